"""Processing jobs in a batch scheduler (PBS, Slurm): one module per concern.

- :mod:`.settings`: what the profiles' submit/status/cancel commands need of the config
- :mod:`.adapters`: PBS and Slurm behind one interface (submit, bulk listing, cancel, states)
- :mod:`.listings`, :mod:`.qstatquery`: the scheduler's job listings, read by field
- :mod:`.records`: job records, their paths and the submit lock
- :mod:`.requests`: a run's processing request (written by the tick, read by its job)
- :mod:`.submit`, :mod:`.status`, :mod:`.collect`: a job's life as the host sees it
- :mod:`.walltime`: how long a job may run, and which queue takes it
- :mod:`.plan`: a tick's processing plan (collect, reprocess, job slots)
- :mod:`.cli`: ``fulliautomatix-scheduler`` and ``fulliautomatix-cancel``

This file stays light: a processing job imports it (see ``jobs.EXPECTED_BY_MODULE``).
"""


class SchedulerError(Exception):
    """A scheduler command failed or its settings are missing; the message names the run and the fix."""
