# Stage 4: compressed -> archiving -> archived.  Once this tick's compressions
# are done, close_batches decides which batches are complete (runs consecutive
# in name order, batch_runs or min_bytes, or max_wait_days), hence a
# checkpoint.  One tarball per batch, read back from the archive and verified
# before any compressed copy is purged.


checkpoint close_batches:
    input:
        plan="state/ticks/{tick}/plan.json",
        compressed=get_compressed_this_tick,
    output:
        batches="state/ticks/{tick}/batches.json",
    log:
        "logs/close_batches/{tick}.log",
    benchmark:
        "benchmarks/close_batches/{tick}.tsv"
    localrule: True
    conda:
        "../envs/fulliautomatix.yaml"
    script:
        "../scripts/close_batches.py"


rule archive_batch:
    input:
        compressed=get_batch_members,
    output:
        marker=update("state/archived/{batch}.json"),
    log:
        "logs/archive_batch/{batch}.log",
    benchmark:
        "benchmarks/archive_batch/{batch}.tsv"
    localrule: True
    conda:
        "../envs/fulliautomatix.yaml"
    script:
        "../scripts/archive_batch.py"
