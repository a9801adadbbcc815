#!/usr/bin/env python3
"""Derives core/data/airports.csv from the airportsdata wheel (see README.md beside this file).

Usage: python3 core/data/derive_airports.py airportsdata-20260905-py3-none-any.whl > core/data/airports.csv

Standard library only, so the derivation can be repeated on any machine with Python 3.
"""

import csv
import hashlib
import io
import sys
import zipfile

WHEEL_SHA256 = "d7eaa9a57d373b0adaaae0d52da2af0bb0edf73f7baa170f7c415d3342bf4868"


def main(wheel_path):
    blob = open(wheel_path, "rb").read()
    digest = hashlib.sha256(blob).hexdigest()
    if digest != WHEEL_SHA256:
        sys.exit(f"{wheel_path}: sha256 {digest}, expected {WHEEL_SHA256} (see README.md)")
    wheel = zipfile.ZipFile(io.BytesIO(blob))
    airports = list(csv.DictReader(io.TextIOWrapper(wheel.open("airportsdata/airports.csv"), "utf-8")))
    macs = list(csv.DictReader(io.TextIOWrapper(wheel.open("airportsdata/iata_macs.csv"), "utf-8")))

    rows = {}
    by_code = {}
    for a in airports:
        code = a["iata"]
        if not code:
            continue
        # An airport without a city is named by the airport itself: still what a person recognises.
        place = a["city"] or a["name"]
        rows[code] = (code, place, a["country"], a["lat"], a["lon"])
        by_code[code] = a

    # Multi-airport city codes (LON, NYC, TYO...) are not airports, so airportsdata lists them apart and
    # without coordinates. We place each at the mean of its airports; a code that is also an airport keeps
    # the airport's own row.
    members = {}
    for m in macs:
        members.setdefault(m["City Code"], []).append(m)
    for code, ms in members.items():
        if code in rows:
            continue
        points = [by_code[m["Airport Code"]] for m in ms if m["Airport Code"] in by_code]
        lat = sum(float(p["lat"]) for p in points) / len(points)
        lon = sum(float(p["lon"]) for p in points) / len(points)
        rows[code] = (code, ms[0]["City Name"], ms[0]["Country"], f"{lat:.5f}", f"{lon:.5f}")

    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(["code", "city", "country", "lat", "lon"])
    for code in sorted(rows):
        out.writerow(rows[code])


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
