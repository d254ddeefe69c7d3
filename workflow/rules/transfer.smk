# Stage 1: acquired -> transferring -> ondeck.  rsync from the DAQ to the
# cluster's scratch; every file's checksum is compared on both ends first.


rule transfer_run:
    output:
        marker=update("state/ondeck/{run}.json"),
    log:
        "logs/transfer_run/{run}.log",
    benchmark:
        "benchmarks/transfer_run/{run}.tsv"
    localrule: True
    conda:
        "../envs/fulliautomatix.yaml"
    resources:
        transfer_slots=1,
    script:
        "../scripts/transfer_run.py"


# Each tick with the transfer stage and a purge policy other than keep: delete
# DAQ copies that are due, each only after its copy on the cluster or in the
# archive verifies again and the DAQ copy is still exactly what was verified.


rule purge_daq_copies:
    input:
        plan="state/ticks/{tick}/plan.json",
    output:
        report="state/purges/{tick}.json",
    log:
        "logs/purge_daq_copies/{tick}.log",
    benchmark:
        "benchmarks/purge_daq_copies/{tick}.tsv"
    localrule: True
    conda:
        "../envs/fulliautomatix.yaml"
    script:
        "../scripts/purge_daq_copies.py"
