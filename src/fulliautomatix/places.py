"""Where a run's copies are (its DAQ directory, its scratch paths) and the hosts that hold them.

Shared by the transfer, which copies a run from the DAQ to scratch, and the
purge, which deletes the DAQ copy once another copy verified.
"""

from __future__ import annotations

from . import config as fa_config
from . import hosts


def daq_host(config: dict) -> hosts.Host:
    return hosts.Host.from_config(config["daq"], hosts.control_dir(config))


def cluster_host(config: dict, name: str | None = None) -> hosts.Host:
    section = config["clusters"][name] if name else fa_config.cluster(config)
    return hosts.Host.from_config(section, hosts.control_dir(config))


def cluster_from_daq(config: dict) -> hosts.Host:
    """The cluster as rsync on the DAQ machine reaches it (clusters.<name>.from_daq)."""
    cl = fa_config.cluster(config)
    if config["daq"].get("host", "local") == "local":
        return cluster_host(config)  # the DAQ directory is here: use our own way there
    route = cl.get("from_daq") or {}
    dest = route.get("host") or cl.get("host", "local")
    if dest == "local":
        raise fa_config.ConfigError(
            f"config key clusters.{cl['name']}.from_daq.host: the DAQ is remote and the cluster is this machine; "
            "say how the DAQ machine reaches it"
        )
    return hosts.Host(
        dest,
        tuple(route.get("ssh") or hosts.DEFAULT_SSH),
        route.get("user") or cl.get("user") or "",
        route.get("port") or cl.get("port"),
    )


def locations(config: dict, run: str) -> dict[str, str]:
    scratch = fa_config.cluster(config)["scratch"].rstrip("/") or "/"
    return {
        "source": f"{config['daq']['raw_dir'].rstrip('/')}/{run}",
        "scratch": scratch,
        "staging": f"{scratch}/raw/.incoming/{run}",
        "final": f"{scratch}/raw/{run}",
    }
