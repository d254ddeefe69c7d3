# The tick's last job.  Its input is everything else the tick builds, so it
# runs once all of it is done: it counts what the tick did (one summary line),
# lists the runs needing attention and notifies the operators of new, open and
# resolved problems (notify.urls), writes the Prometheus metrics
# (metrics.textfile), prunes logs older than log_retention_days, and records
# the tick as the last successful one (state/last_tick.json).  When another job
# of the tick fails, Snakemake skips this one: the next tick sees the failure
# in the runs DB, and the wrapper reports a tick that crashed.


rule finish_tick:
    input:
        get_tick_targets,
        get_archive_targets,
        get_audit_target,
    output:
        record="state/ticks/{tick}/finish.json",
    log:
        "logs/finish_tick/{tick}.log",
    benchmark:
        "benchmarks/finish_tick/{tick}.tsv"
    localrule: True
    conda:
        "../envs/fulliautomatix.yaml"
    script:
        "../scripts/finish_tick.py"
