"""A SIEM stand-in that checks the hub's wire formats strictly, for the SIEM-export test
(no OpenTelemetry Collector or Splunk can run here):
- `POST /v1/logs`: OTLP/HTTP JSON, parsed into the OTLP protobuf schema
  (`ExportLogsServiceRequest`, from the pinned `opentelemetry-proto`) with unknown fields
  refused; every log record needs a time, a severity and a `countersign.id` attribute.
- `POST /services/collector/event`: Splunk HEC, `Authorization: Splunk <token>`, one JSON
  event object per line with `time` (epoch seconds), `sourcetype` and an `event` object.
`GET /stats` returns the record ids each sink received, the OTLP log records' trace ids
by record id (`traceId` as OTLP/JSON writes it: hex, which protobuf's own JSON mapping
would read as base64) and any format errors.

Usage: siem_receiver.py PORT HEC_TOKEN_FILE. Test plumbing, not part of the product."""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

PORT, TOKEN = int(sys.argv[1]), open(sys.argv[2]).read().strip()
STATS = {"otlp_ids": [], "hec_ids": [], "otlp_traces": {}, "errors": []}
LOCK = threading.Lock()


def check_otlp(body: bytes):
    request = json_format.Parse(body, ExportLogsServiceRequest(), ignore_unknown_fields=False)
    ids = []
    for resource in request.resource_logs:
        attrs = {a.key: a.value.string_value for a in resource.resource.attributes}
        assert attrs.get("service.name") == "countersign", attrs
        for scope in resource.scope_logs:
            for record in scope.log_records:
                assert record.time_unix_nano > 0, "no time"
                assert record.severity_number in (9, 13) and record.severity_text, "no severity"
                fields = {a.key: a.value.string_value for a in record.attributes}
                assert fields.get("countersign.id"), "no countersign.id"
                assert record.body.string_value, "no body"
                ids.append(fields["countersign.id"])
    return ids


def otlp_traces(body: bytes) -> dict:
    """Each log record's `traceId`, by its `countersign.id`."""
    traces = {}
    for resource in json.loads(body)["resourceLogs"]:
        for scope in resource["scopeLogs"]:
            for record in scope["logRecords"]:
                if "traceId" in record:
                    key = next(a["value"]["stringValue"] for a in record["attributes"] if a["key"] == "countersign.id")
                    traces[key] = record["traceId"]
    return traces


def check_hec(headers, body: bytes):
    assert headers.get("Authorization") == f"Splunk {TOKEN}", "wrong or missing HEC token"
    ids = []
    for line in body.decode().splitlines():
        event = json.loads(line)
        assert isinstance(event["time"], (int, float)) and event["time"] > 1e9, event.get("time")
        assert event["sourcetype"] == "countersign:audit" and event["host"], event
        assert isinstance(event["event"], dict) and event["event"]["id"], event
        ids.append(event["event"]["id"])
    return ids


class Receiver(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status: int, data: dict):
        body = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        with LOCK:
            self.reply(200, STATS)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            if self.path == "/v1/logs":
                assert self.headers.get("Content-Type", "").startswith("application/json")
                ids, key = check_otlp(body), "otlp_ids"
                with LOCK:
                    STATS["otlp_traces"].update(otlp_traces(body))
            elif self.path == "/services/collector/event":
                ids, key = check_hec(self.headers, body), "hec_ids"
            else:
                return self.reply(404, {"error": "unknown path"})
        except Exception as e:  # noqa: BLE001  (every format error is reported to the test)
            with LOCK:
                STATS["errors"].append(f"{self.path}: {e!r}")
            return self.reply(400, {"error": str(e)})
        with LOCK:
            STATS[key].extend(ids)
        self.reply(200, {"text": "Success", "code": 0} if key == "hec_ids" else {})


ThreadingHTTPServer(("127.0.0.1", PORT), Receiver).serve_forever()
