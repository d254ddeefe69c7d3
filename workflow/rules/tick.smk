# A tick's first job.  It takes the tick lock (held until this Snakemake
# exits), starts the embedded runs DB when that is the config's, collects the
# batch jobs of earlier ticks, replays every stage marker the runs DB missed
# (a write lost to a crash, or a compute node that cannot reach the DB), asks
# the DAQ once whether it is live and which runs it still writes, writes each
# processing job's request (queue, walltime), and records which runs go
# through which stages.  The rest of the tick's DAG is built from that plan,
# hence a checkpoint.  Another tick running: the plan is empty, one line says so.


checkpoint sync_runs_db:
    output:
        plan="state/ticks/{tick}/plan.json",
    log:
        "logs/sync_runs_db/{tick}.log",
    benchmark:
        "benchmarks/sync_runs_db/{tick}.tsv"
    localrule: True
    conda:
        "../envs/fulliautomatix.yaml"
    script:
        "../scripts/sync_runs_db.py"
