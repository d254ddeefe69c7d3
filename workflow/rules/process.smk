# Stage 2: processed_status none -> queued -> processing -> processed (or failed).
# Runs the configured processor on the raw copy on scratch.


rule process_run:
    input:
        ondeck=rules.transfer_run.output.marker,
    output:
        marker="state/processed/{run}.json",
    log:
        "logs/process_run/{run}.log",
    benchmark:
        "benchmarks/process_run/{run}.tsv"
    conda:
        "../envs/fulliautomatix.yaml"
    script:
        "../scripts/process_run.py"
