# Stage 4: compressed -> archiving -> archived.  One tarball per batch, read
# back from the archive and verified before any compressed copy is purged.


rule archive_batch:
    input:
        compressed=get_batch_members,
    output:
        marker="state/archived/{batch}.json",
    log:
        "logs/archive_batch/{batch}.log",
    benchmark:
        "benchmarks/archive_batch/{batch}.tsv"
    conda:
        "../envs/fulliautomatix.yaml"
    localrule: True
    script:
        "../scripts/archive_batch.py"
