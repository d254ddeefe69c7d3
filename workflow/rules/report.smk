# The operators' report (fulliautomatix report), when report.every_tick is on:
# written to report.path once everything else this tick does is done (its
# inputs are the tick's targets, as finish_tick's are), so the page shows the
# runs DB as the tick leaves it.  It runs beside finish_tick, which it does not
# wait for (finish_tick changes no run); rule all asks for both
# (get_tick_end).  The marker says where the page went.


# After the audit (it shows what the audit found), and never beside it: the two read much of the runs DB,
# and nx-27017 answers one command at a time.
rule write_report:
    input:
        get_tick_targets,
        get_archive_targets,
        get_audit_target,
    output:
        marker="state/ticks/{tick}/report.json",
    log:
        "logs/write_report/{tick}.log",
    benchmark:
        "benchmarks/write_report/{tick}.tsv"
    localrule: True
    conda:
        "../envs/fulliautomatix.yaml"
    script:
        "../scripts/write_report.py"
