"""Stand-ins for what the experiment provides: the DAQ and its processor, never used in production.

    simulate.py   simulate-daq: writes simulated raw runs and their runs DB documents, as the DAQ does
    processor.py  the reference processor, standing in for the experiment's processor (pax)
    rawformat.py  the simulated raw format both of them read and write

The test suite, the benchmarks and ``make demo`` run the whole chain with them;
a site replaces them with its DAQ and with its processor in
``processing.command`` (config/config.yaml).
"""
