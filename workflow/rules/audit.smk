# The archive's fixity check, a few runs each tick: once this tick's batches
# are archived, read back audit.per_tick archived runs (the ones audited
# longest ago first) and compare every member with its recorded sha256.  A
# copy that no longer verifies is recorded (archive.copy_ok false) and shown
# by `status` as LOST-COPY; the tick warns but does not fail.  Strays and
# missing copies are `fulliautomatix audit`'s (they read every directory).


rule audit_archive:
    input:
        plan="state/ticks/{tick}/plan.json",
        archived=get_archive_targets,
    output:
        record="state/ticks/{tick}/audit.json",
    log:
        "logs/audit_archive/{tick}.log",
    benchmark:
        "benchmarks/audit_archive/{tick}.tsv"
    localrule: True
    conda:
        "../envs/fulliautomatix.yaml"
    script:
        "../scripts/audit_archive.py"
