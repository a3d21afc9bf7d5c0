#!/usr/bin/env python3
"""Submit a signed-transaction file (as cvx-vault writes it) to a cvx peer's HTTP API and
print the finalized result. Python 3 standard library only.

    python3 submit_tx.py [--api http://127.0.0.1:18889] [--wait SECS] FILE

It POSTs the file's bytes to /v1/tx?wait=SECS (Content-Type: application/octet-stream;
docs/api.yaml) and prints the answer as one JSON object on stdout:

    {"id": "...", "status": "finalized", "block": 12, "index": 0, "outcome": "applied", "code": null}

Exit codes: 0 finalized and applied; 1 finalized but failed (the code says why, e.g.
FUNDS); 2 refused by the peer (the JSON error is printed on stdout, e.g. {"code":
"SEQUENCE", ...}); 3 not finalized within the wait (status "pending": ask
/v1/tx/{id} later; do not re-sign with a new sequence); 4 the peer could not be reached or
stayed busy. A 503 (LOAD or NETWORK) is retried after its Retry-After, a few times.
"""

import argparse
import json
import sys
import time
import urllib.error
import urllib.request

RETRIES = 5


def submit(api, data, wait):
    url = f"{api.rstrip('/')}/v1/tx" + (f"?wait={wait}" if wait else "")
    req = urllib.request.Request(
        url,
        data=data,
        method="POST",
        headers={"Content-Type": "application/octet-stream"},
    )
    # The peer answers within `wait` seconds (plus its own few seconds of limits).
    with urllib.request.urlopen(req, timeout=wait + 30) as resp:
        return resp.status, json.load(resp)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("file", help="signed-transaction file written by cvx-vault tx")
    p.add_argument("--api", default="http://127.0.0.1:18889", help="the peer's API base URL")
    p.add_argument("--wait", type=int, default=10, help="seconds to wait for finality (0..60)")
    args = p.parse_args()
    with open(args.file, "rb") as f:
        data = f.read()
    for attempt in range(RETRIES):
        try:
            status, body = submit(args.api, data, args.wait)
        except urllib.error.HTTPError as e:
            try:
                body = json.load(e)
            except ValueError:
                body = {"code": None, "detail": f"HTTP {e.code} without a JSON body"}
            if e.code == 503 and attempt + 1 < RETRIES:
                delay = int(e.headers.get("Retry-After", "1"))
                print(f"busy ({body.get('code')}): retrying in {delay} s", file=sys.stderr)
                time.sleep(delay)
                continue
            print(json.dumps(body))
            print(f"refused: {body.get('code')}: {body.get('detail')}", file=sys.stderr)
            return 4 if e.code == 503 else 2
        except (urllib.error.URLError, OSError) as e:
            print(f"cannot reach {args.api}: {e}", file=sys.stderr)
            return 4
        print(json.dumps(body))
        if status == 202:
            print(f"not finalized within {args.wait} s; ask {args.api}/v1/tx/{body['id']}", file=sys.stderr)
            return 3
        return 0 if body.get("outcome") == "applied" else 1
    return 4


if __name__ == "__main__":
    sys.exit(main())
