"""Counters out: Prometheus text exposition (an HTTP endpoint) and a one-line log form."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def prometheus_text(stats: dict, capture: dict | None = None) -> str:
    lines: list[str] = []

    def metric(name: str, kind: str, helptext: str, samples: list[tuple[dict, float]]) -> None:
        lines.append(f"# HELP kdd_sensor_{name} {helptext}")
        lines.append(f"# TYPE kdd_sensor_{name} {kind}")
        for labels, value in samples:
            label = ",".join(f'{k}="{v}"' for k, v in labels.items())
            lines.append(f"kdd_sensor_{name}{{{label}}} {value}" if label
                         else f"kdd_sensor_{name} {value}")

    metric("packets_total", "counter", "Packets read.", [({}, stats["packets"])])
    if capture:
        metric("kernel_dropped_total", "counter", "Packets dropped by the kernel.",
               [({}, capture.get("kernel_dropped", 0))])
        metric("interface_dropped_total", "counter", "Packets dropped by the interface.",
               [({}, capture.get("interface_dropped", 0))])
    metric("decode_errors_total", "counter", "Packets skipped, by reason.",
           [({"kind": k}, v) for k, v in sorted(stats["decode_errors"].items())])
    metric("tunnelled_packets_total", "counter",
           "Packets opened from a mirror tunnel or an MPLS stack, by kind.",
           [({"kind": k}, v) for k, v in sorted(stats["tunnelled"].items())])
    loss = stats["capture_loss"]
    metric("tcp_acks_total", "counter", "TCP ACKs checked against the data captured.",
           [({}, loss["acks"])])
    metric("tcp_gaps_total", "counter",
           "TCP ACKs for data never captured (capture loss: a rate of this over tcp_acks).",
           [({}, loss["gaps"])])
    metric("tcp_gap_bytes_total", "counter", "Bytes ACKed but never captured.",
           [({}, loss["gap_bytes"])])
    metric("connections_active", "gauge", "Open connections.",
           [({}, stats["connections_active"])])
    metric("connections_expired_total", "counter", "Connections ended by timeout class.",
           [({"reason": k}, v) for k, v in sorted(stats["connections_expired"].items())])
    metric("connections_evicted_total", "counter", "Connections evicted by the table cap.",
           [({}, stats["connections_evicted"])])
    metric("records_total", "counter", "Connection records, by protocol.",
           [({"proto": k}, v) for k, v in sorted(stats["records"].items())])
    metric("predicted_total", "counter", "Classified connections, by class.",
           [({"class": k}, v) for k, v in sorted(stats["predicted"].items())])
    metric("snapshots_total", "counter",
           "Snapshots of connections still open (extractor.interim) classified, by class.",
           [({"class": k}, v) for k, v in sorted(stats["snapshots"].items())])
    metric("alerts_interim_repeats_total", "counter",
           "Alerts not repeated: a snapshot of the same connection had alerted that class.",
           [({}, stats["interim_repeats"])])
    metric("alerts_total", "counter", "Alerts sent, by class.",
           [({"class": k}, v) for k, v in sorted(stats["alerts"].items())])
    metric("alerts_suppressed_total", "counter", "Alerts suppressed by CIDR, by class.",
           [({"class": k}, v) for k, v in sorted(stats["suppressed"].items())])
    metric("alerts_thresholded_total", "counter", "Alerts held back by thresholds, by class.",
           [({"class": k}, v) for k, v in sorted(stats["thresholded"].items())])
    metric("inference_batches_total", "counter", "Model invocations.",
           [({}, stats["inference_batches"])])
    metric("inference_seconds_total", "counter", "Time spent in the model.",
           [({}, stats["inference_seconds"])])
    metric("inference_cache_hits_total", "counter",
           "Connections answered without a model call of their own (cache, or a repeat).",
           [({}, stats["cache_hits"])])
    for key, value in stats.items():
        if key.startswith("sink_") and isinstance(value, dict):
            sink = key[5:]
            for name, v in value.items():
                metric(f"sink_{name}", "gauge" if name in ("connected", "spool_bytes") else
                       "counter", f"Sink counter {name}.", [({"sink": sink}, v)])
    return "\n".join(lines) + "\n"


def loss_percent(loss: dict) -> float:
    """Zeek's capture-loss estimate: the share of ACKs that acknowledge data never seen."""
    return 100.0 * loss["gaps"] / loss["acks"] if loss["acks"] else 0.0


class LossWatch:
    """Warns, as Zeek's CaptureLoss::Too_Much_Loss notice does, when the share of ACKs for
    data never captured passes `threshold` percent over one stats interval."""

    def __init__(self, threshold: float = 10.0, minimum_acks: int = 100):
        self.threshold = threshold
        self.minimum_acks = minimum_acks
        self.last = {"acks": 0, "gaps": 0}

    def check(self, loss: dict) -> str | None:
        acks = loss["acks"] - self.last["acks"]
        gaps = loss["gaps"] - self.last["gaps"]
        self.last = {"acks": loss["acks"], "gaps": loss["gaps"]}
        pct = loss_percent({"acks": acks, "gaps": gaps})
        if acks < self.minimum_acks or pct < self.threshold:
            return None
        return (f"warning: capture loss {pct:.1f}% since the last stats ({gaps} of {acks} TCP "
                f"ACKs for data never captured): the mirror or TAP is dropping packets")


def log_line(stats: dict, capture: dict | None = None) -> str:
    parts = [f"packets={stats['packets']}"]
    if capture:
        parts.append(f"kernel_dropped={capture.get('kernel_dropped', 0)}")
    parts += [f"active={stats['connections_active']}", f"evicted={stats['connections_evicted']}",
              f"decode_errors={sum(stats['decode_errors'].values())}",
              f"capture_loss={loss_percent(stats['capture_loss']):.2f}%",
              f"alerts={sum(stats['alerts'].values())}",
              f"suppressed={sum(stats['suppressed'].values())}",
              f"batches={stats['inference_batches']}"]
    return "stats: " + " ".join(parts)


class MetricsServer:
    """Serves the latest snapshot at /metrics; the packet loop replaces the snapshot."""

    def __init__(self, address: str):
        host, _, port = address.rpartition(":")
        self.text = "# no data yet\n"
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                body = server.text.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                return None

        self.httpd = ThreadingHTTPServer((host or "127.0.0.1", int(port)), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def update(self, text: str) -> None:
        self.text = text

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
