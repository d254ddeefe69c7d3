# Stage 3: ondeck -> compressing -> compressed.  tar + zstd, verified against
# the transfer checksums before the uncompressed copy on scratch is removed.
# A local rule: it runs where the tick runs, never as a batch job.


rule compress_run:
    input:
        processed=rules.process_run.output.marker,
    output:
        marker=update("state/compressed/{run}.json"),
    log:
        "logs/compress_run/{run}.log",
    benchmark:
        "benchmarks/compress_run/{run}.tsv"
    localrule: True
    conda:
        "../envs/fulliautomatix.yaml"
    script:
        "../scripts/compress_run.py"
