# Stage 1: acquired -> transferring -> ondeck.  rsync from the DAQ to the
# cluster's scratch; every file's checksum is compared on both ends first.


rule transfer_run:
    output:
        marker="state/ondeck/{run}.json",
    log:
        "logs/transfer_run/{run}.log",
    benchmark:
        "benchmarks/transfer_run/{run}.tsv"
    resources:
        transfer_slots=1,
    conda:
        "../envs/fulliautomatix.yaml"
    localrule: True
    script:
        "../scripts/transfer_run.py"
