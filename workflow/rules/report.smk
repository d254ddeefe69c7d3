# The tick's last job, when report.every_tick is on: the operators' report
# (fulliautomatix report) written to report.path, after everything else this
# tick did (its inputs are all of the tick's other targets), so the page shows
# the runs DB as the tick leaves it.  The marker says where the page went.


rule write_report:
    input:
        get_tick_work,
    output:
        marker="state/ticks/{tick}/report.json",
    log:
        "logs/write_report/{tick}.log",
    benchmark:
        "benchmarks/write_report/{tick}.tsv"
    conda:
        "../envs/fulliautomatix.yaml"
    localrule: True
    script:
        "../scripts/write_report.py"
