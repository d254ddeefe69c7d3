# Stage 2: processed_status none -> queued -> processing -> processed (or failed).
# Runs the configured processor on the raw copy on scratch: here with the local
# profile, or as a batch job with a cluster profile.  A job's queue and walltime
# come from the run's request (events, source, earlier walltime kills), written
# by the tick's sync_runs_db job; the profile's submit command records the job id.
# A forced rebuild (-f) of a processed run is refused with one line: reprocessing
# is `fulliautomatix --reprocess RUN`, which keeps the old output.
# Reprocessing (--reprocess) stages the raw data back from the compressed or
# archived copy and writes a new output beside the old one.


rule process_run:
    input:
        ondeck=rules.transfer_run.output.marker,
    output:
        marker=update("state/processed/{run}.json"),
    log:
        "logs/process_run/{run}.log",
    benchmark:
        "benchmarks/process_run/{run}.tsv"
    conda:
        "../envs/fulliautomatix.yaml"
    resources:
        queue=get_queue,
        walltime=get_walltime,
        runtime=get_runtime_minutes,
        slurm_partition=get_queue,
    script:
        "../scripts/process_run.py"


rule stage_raw:
    output:
        marker="state/staged/{run}.json",
    log:
        "logs/stage_raw/{run}.log",
    benchmark:
        "benchmarks/stage_raw/{run}.tsv"
    localrule: True
    conda:
        "../envs/fulliautomatix.yaml"
    script:
        "../scripts/stage_raw.py"


rule reprocess_run:
    input:
        staged=rules.stage_raw.output.marker,
    output:
        marker="state/reprocessed/{run}/{tag}.json",
    log:
        "logs/reprocess_run/{run}/{tag}.log",
    benchmark:
        "benchmarks/reprocess_run/{run}/{tag}.tsv"
    conda:
        "../envs/fulliautomatix.yaml"
    resources:
        queue=get_queue,
        walltime=get_walltime,
        runtime=get_runtime_minutes,
        slurm_partition=get_queue,
    script:
        "../scripts/reprocess_run.py"
