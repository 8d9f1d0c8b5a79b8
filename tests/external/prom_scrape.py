"""Reads coimail's /metrics with the Prometheus project's own Python text
parser (prometheus_client) and prints what it parsed as one JSON object:
the Content-Type and, per metric family, its type, help text and samples.
A line the parser rejects fails the script (and so the test).

usage: prom_scrape.py URL
"""
import json
import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def main():
    with urllib.request.urlopen(sys.argv[1], timeout=30) as response:
        content_type = response.headers.get("Content-Type", "")
        text = response.read().decode("utf-8")
    families = []
    for family in text_string_to_metric_families(text):
        families.append({
            "name": family.name,
            "type": family.type,
            "help": family.documentation,
            "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in family.samples],
        })
    print(json.dumps({"content_type": content_type, "families": families}))


if __name__ == "__main__":
    main()
