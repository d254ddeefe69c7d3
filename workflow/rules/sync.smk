# Each tick: replay stage markers that are ahead of the runs DB (a write lost
# to a crash or an unreachable DB), then decide which batches of compressed
# runs are closed.  Batch membership is known only now, hence a checkpoint.


checkpoint sync_runs_db:
    output:
        plan="state/ticks/{tick}.json",
    log:
        "logs/sync_runs_db/{tick}.log",
    benchmark:
        "benchmarks/sync_runs_db/{tick}.tsv"
    conda:
        "../envs/fulliautomatix.yaml"
    localrule: True
    script:
        "../scripts/sync_runs_db.py"
