"""The connection record: the contract between the extractor, the model and the sensor.

Column order, names and categorical vocabularies are NSL-KDD's (see docs/features.md).
"""

from __future__ import annotations

from dataclasses import dataclass

FEATURE_NAMES: tuple[str, ...] = (
    "duration", "protocol_type", "service", "flag", "src_bytes", "dst_bytes", "land",
    "wrong_fragment", "urgent", "hot", "num_failed_logins", "logged_in", "num_compromised",
    "root_shell", "su_attempted", "num_root", "num_file_creations", "num_shells",
    "num_access_files", "num_outbound_cmds", "is_host_login", "is_guest_login", "count",
    "srv_count", "serror_rate", "srv_serror_rate", "rerror_rate", "srv_rerror_rate",
    "same_srv_rate", "diff_srv_rate", "srv_diff_host_rate", "dst_host_count",
    "dst_host_srv_count", "dst_host_same_srv_rate", "dst_host_diff_srv_rate",
    "dst_host_same_src_port_rate", "dst_host_srv_diff_host_rate", "dst_host_serror_rate",
    "dst_host_srv_serror_rate", "dst_host_rerror_rate", "dst_host_srv_rerror_rate",
)

PROTOCOLS: tuple[str, ...] = ("tcp", "udp", "icmp")

FLAGS: tuple[str, ...] = (
    "SF", "S0", "S1", "S2", "S3", "REJ", "RSTO", "RSTR", "RSTOS0", "RSTRH", "SH", "SHR", "OTH",
)
# The flags that count as a "SYN error" and a "REJ error" in the window rates (docs/features.md;
# the kernel holds the same table).
SYN_ERROR_FLAGS = frozenset({"S0", "S1", "S2", "S3", "SH", "SHR"})
REJ_ERROR_FLAGS = frozenset({"REJ", "RSTO", "RSTR", "RSTOS0", "RSTRH"})

# The 70 services of KDDTrain+ (the same set as KDDTest+), by frequency in KDDTrain+.
SERVICES: tuple[str, ...] = (
    "http", "private", "domain_u", "smtp", "ftp_data", "eco_i", "other", "ecr_i", "telnet",
    "finger", "ftp", "auth", "Z39_50", "uucp", "courier", "bgp", "whois", "uucp_path",
    "iso_tsap", "time", "imap4", "nnsp", "vmnet", "urp_i", "domain", "ctf", "csnet_ns",
    "supdup", "discard", "http_443", "daytime", "gopher", "efs", "systat", "link", "exec",
    "hostnames", "name", "mtp", "echo", "klogin", "login", "ldap", "netbios_dgm", "sunrpc",
    "netbios_ssn", "netstat", "netbios_ns", "ssh", "kshell", "nntp", "pop_3", "sql_net", "IRC",
    "ntp_u", "rje", "remote_job", "pop_2", "X11", "printer", "shell", "urh_i", "tim_i", "red_i",
    "pm_dump", "tftp_u", "http_8001", "harvest", "aol", "http_2784",
)

CATEGORICAL: dict[str, tuple[str, ...]] = {
    "protocol_type": PROTOCOLS,
    "service": SERVICES,
    "flag": FLAGS,
}

RATE_FEATURES: frozenset[str] = frozenset(n for n in FEATURE_NAMES if n.endswith("_rate"))

META_COLUMNS: tuple[str, ...] = ("ts", "src_ip", "src_port", "dst_ip", "dst_port", "proto")

CLASSES: tuple[str, ...] = ("normal", "dos", "probe", "r2l", "u2r")

_RATE_INDEXES = frozenset(i for i, n in enumerate(FEATURE_NAMES) if n in RATE_FEATURES)
_CATEGORICAL_INDEXES = {FEATURE_NAMES.index(n): v for n, v in CATEGORICAL.items()}
# One %-template for a whole row: integers bare, rates with two decimals, as NSL-KDD writes them.
ROW_TEMPLATE = ",".join(
    "%s" if n in CATEGORICAL else "%.2f" if n in RATE_FEATURES else "%d" for n in FEATURE_NAMES)


@dataclass(slots=True)
class ConnectionRecord:
    """One finished connection (or ICMP message) with its 41 features.

    `src_*` is the originator. For ICMP, ports hold the type (src) and code (dst), as Zeek does.
    `emit_ts` is the capture time at which the record was decided (its packet's, or a timeout's
    due time), used for detection latency.
    """

    ts: float
    last_ts: float
    emit_ts: float
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    proto: str
    ip_proto: int
    features: list
    orig_pkts: int = 0
    resp_pkts: int = 0
    orig_frame_bytes: int = 0
    resp_frame_bytes: int = 0
    emit_packet: int = 0  # packets read by the extractor when the record was decided
    link_broadcast: int = 0  # 1: the originator sent to the link's broadcast address
    interim: int = 0  # 1: a snapshot of a connection still open, as if it ended at emit_ts

    def meta_prefix(self) -> str:
        """The `ts,src_ip,src_port,dst_ip,dst_port,proto` columns of the `--meta` CSV."""
        return (f"{self.ts:.6f},{self.src_ip},{self.src_port},{self.dst_ip},{self.dst_port},"
                f"{self.proto}")


def format_features(features: list) -> str:
    """The 41 values as one NSL-KDD CSV row (no label)."""
    return ROW_TEMPLATE % tuple(features)


class RowError(ValueError):
    """A row that is not 41 NSL-KDD features."""


def parse_features(fields: list[str]) -> list:
    """Parse 41 NSL-KDD fields into typed values; raise RowError naming the bad column."""
    if len(fields) < len(FEATURE_NAMES):
        raise RowError(f"expected {len(FEATURE_NAMES)} features, got {len(fields)}")
    out: list = []
    for i, name in enumerate(FEATURE_NAMES):
        raw = fields[i].strip()
        vocab = _CATEGORICAL_INDEXES.get(i)
        if vocab is not None:
            if not raw or "," in raw:
                raise RowError(f"column {i + 1} ({name}): empty or malformed value {raw!r}")
            out.append(raw)
            continue
        try:
            value = float(raw)
        except ValueError:
            raise RowError(f"column {i + 1} ({name}): not a number: {raw!r}") from None
        if value != value or value < 0:
            raise RowError(f"column {i + 1} ({name}): must be a non-negative number: {raw!r}")
        if i in _RATE_INDEXES and value > 1.0:
            raise RowError(f"column {i + 1} ({name}): rate above 1: {raw!r}")
        out.append(value)
    return out
