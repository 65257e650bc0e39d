"""Load generator for Kerberos KDCs: mpckdc and MIT krb5kdc measured the same way.

- ``requests``: pre-built AS / pre-authenticated AS / TGS / login requests and reply checks
- ``engine``: closed- and open-loop load over UDP or TCP, in one or several processes
- ``stats``: latency histograms, time series, errors by code
- ``progress``: live progress line; ``report``: JSON and PNG plots; ``cli``: command line
"""

from .engine import LoadConfig, RunResult, run_load

__all__ = ["LoadConfig", "RunResult", "run_load"]
