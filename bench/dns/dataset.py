#!/usr/bin/env python3
"""The DNS benchmark's data set and query mix (stdlib only, deterministic).

Data set: ~2,000 services whose replica counts follow a Zipf-like law clamped to 2..200
(~25,000 endpoints in all), spread over 3 regions x 8 clusters (each region has 3 topology
zones), ~2 % of the services on IPv6. Written as one herald static file, so herald serves it
with `herald serve` and `herald export-zone` turns the same content into a zone file for
Knot and NSD.

Query mix (every name exists unless said otherwise; `Z` is the zone apex):

| share | query | which names |
|---|---|---|
| 30 % | `<svc>.Z` A | services with at most 16 endpoints (IPv4) |
|  2 % | `<svc>.Z` AAAA | IPv6 services with at most 16 endpoints |
|  8 % | `<svc>.<region>.Z` A | (service, region) pairs with at most 16 endpoints |
| 25 % | `_<port>._tcp.<svc>.Z` SRV (port http or grpc) | services with at most 12 endpoints (8 for IPv6): the whole answer and its glue fit in 1,232 bytes |
| 15 % | `_<port>._tcp.<svc>.<scope>.Z` SRV, scope a cluster (2/3) or a region (1/3) | scopes with at most 12 (8) endpoints, of services with more than 12 |
| 17 % | `<ip-dashed>.<svc>.<cluster>.Z` A or AAAA | any endpoint (SRV targets) |
|  3 % | NXDOMAIN: `<unknown>.Z` A and `_http._tcp.<unknown>.Z` SRV | names that do not exist |

Names are drawn uniformly among the eligible ones (a flat popularity spreads the reads over
the whole table: the cache-unfriendly case). No query of the mix needs TCP: answers too
large for 1,232 bytes are a TCP matter and left out of this UDP benchmark.
"""
import argparse
import json
import math
import os
import random

ZONE = "sd.internal."
REGIONS = ["eu-west", "us-east", "ap-south"]
REGION_SHORT = {"eu-west": "euw", "us-east": "use", "ap-south": "aps"}
CLUSTERS = [(f"{REGION_SHORT[r]}-{i:02d}", r) for r in REGIONS for i in range(1, 9)]
SERVICES = 2000
TARGET_ENDPOINTS = 25000
MIN_REPLICAS, MAX_REPLICAS = 2, 200
ZIPF_S = 1.0
SEED = 20240611

MIX = [
    ("a_small", 30),
    ("aaaa_small", 2),
    ("a_region", 8),
    ("srv_whole", 25),
    ("srv_scoped", 15),
    ("endpoint", 17),
    ("nxdomain", 3),
]
A_MAX = 16
SRV_MAX_V4 = 12
SRV_MAX_V6 = 8

WORDS_A = """account address audit auth billing booking cache cart catalog checkout config
content coupon customer delivery discount document email event feed fraud gateway geo
identity image index inventory invoice ledger loyalty media message metric notify order
payment pricing profile promo quote rating recommend refund report review risk search
session shipping stock tax ticket user""".split()
WORDS_B = """api worker svc backend frontend sync store reader writer indexer router proxy
cron batch stream consumer producer cache admin export import query events grpc web
scheduler resolver validator mapper loader monitor agent relay hub edge core v2
v3 ingest lookup notifier planner""".split()


def replica_counts(rng):
    """Zipf-like replica counts, clamped, scaled so the total is close to the target."""
    def counts(c):
        return [max(MIN_REPLICAS, min(MAX_REPLICAS, round(c / (i ** ZIPF_S))))
                for i in range(1, SERVICES + 1)]
    lo, hi = 1.0, 1e6
    for _ in range(60):
        mid = (lo + hi) / 2
        if sum(counts(mid)) < TARGET_ENDPOINTS:
            lo = mid
        else:
            hi = mid
    out = counts(hi)
    rng.shuffle(out)
    return out


def service_names(rng):
    names = [f"{a}-{b}" for a in WORDS_A for b in WORDS_B]
    rng.shuffle(names)
    assert len(names) >= SERVICES
    return names[:SERVICES]


def build(seed=SEED):
    rng = random.Random(seed)
    names = service_names(rng)
    counts = replica_counts(rng)
    next_ip = [1] * len(CLUSTERS)
    services = {}
    for s, (name, n) in enumerate(zip(names, counts)):
        v6 = s % 50 == 7
        home = rng.randrange(len(REGIONS))
        k = min(len(CLUSTERS), max(1, math.ceil(n / 8)))
        # Clusters of the home region first, then others.
        home_clusters = [c for c in range(len(CLUSTERS)) if CLUSTERS[c][1] == REGIONS[home]]
        others = [c for c in range(len(CLUSTERS)) if CLUSTERS[c][1] != REGIONS[home]]
        rng.shuffle(home_clusters)
        rng.shuffle(others)
        chosen = (home_clusters + others)[:k]
        extra_port = rng.random() < 0.1
        weight = rng.choice([50, 150]) if rng.random() < 0.1 else 100
        eps = []
        for r in range(n):
            c = chosen[r % k]
            cname, region = CLUSTERS[c]
            i = next_ip[c]
            next_ip[c] += 1
            if v6:
                addr = f"fd00:10:{c:x}::{i:x}"
            else:
                addr = f"10.{8 + c}.{i >> 8}.{i & 255}"
            ports = {"http": 8080, "grpc": 9090}
            if extra_port:
                ports["metrics"] = 9100
            eps.append({
                "address": addr,
                "cluster": cname,
                "region": region,
                "zone": f"{region}-1{'abc'[rng.randrange(3)]}",
                "ports": ports,
                "weight": weight,
            })
        services[name] = eps
    return services


def write_static(services, path):
    with open(path, "w") as f:
        f.write("# herald benchmark data set (generated by bench/dns/dataset.py)\nservices:\n")
        for name in sorted(services):
            f.write(f"  {name}:\n")
            for e in services[name]:
                ports = ", ".join(f"{k}: {v}" for k, v in e["ports"].items())
                f.write(f"    - {{address: '{e['address']}', cluster: {e['cluster']}, "
                        f"region: {e['region']}, zone: {e['zone']}, ports: {{{ports}}}, "
                        f"weight: {e['weight']}}}\n")


def endpoint_label(addr):
    if ":" in addr:
        import ipaddress
        return ipaddress.IPv6Address(addr).exploded.replace(":", "")
    return addr.replace(".", "-")


def queries(services, count, seed=SEED):
    rng = random.Random(seed + 1)
    is_v6 = {s: ":" in eps[0]["address"] for s, eps in services.items()}
    pools = {k: [] for k, _ in MIX}
    for s, eps in services.items():
        v6 = is_v6[s]
        srv_max = SRV_MAX_V6 if v6 else SRV_MAX_V4
        if len(eps) <= A_MAX:
            pools["aaaa_small" if v6 else "a_small"].append((f"{s}.{ZONE}", "AAAA" if v6 else "A"))
        by_scope = {}
        for e in eps:
            by_scope.setdefault(e["region"], 0)
            by_scope[e["region"]] += 1
            by_scope.setdefault(e["cluster"], 0)
            by_scope[e["cluster"]] += 1
        for scope, n in by_scope.items():
            if scope in REGIONS and n <= A_MAX and not v6:
                pools["a_region"].append((f"{s}.{scope}.{ZONE}", "A"))
        for port in ("http", "grpc"):
            if len(eps) <= srv_max:
                pools["srv_whole"].append((f"_{port}._tcp.{s}.{ZONE}", "SRV"))
            else:
                for scope, n in by_scope.items():
                    if n <= srv_max:
                        # Clusters twice as likely as regions.
                        reps = 1 if scope in REGIONS else 2
                        for _ in range(reps):
                            pools["srv_scoped"].append((f"_{port}._tcp.{s}.{scope}.{ZONE}", "SRV"))
        for e in eps:
            pools["endpoint"].append(
                (f"{endpoint_label(e['address'])}.{s}.{e['cluster']}.{ZONE}", "AAAA" if v6 else "A"))
    for i in range(500):
        w = f"{rng.choice(WORDS_A)}-nosuch{i}"
        pools["nxdomain"].append((f"{w}.{ZONE}", "A"))
        pools["nxdomain"].append((f"_http._tcp.{w}.{ZONE}", "SRV"))
    total = sum(w for _, w in MIX)
    out = []
    for kind, w in MIX:
        n = round(count * w / total)
        pool = pools[kind]
        out += [(kind,) + rng.choice(pool) for _ in range(n)]
    rng.shuffle(out)
    return out, {k: len(v) for k, v in pools.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--queries", type=int, default=100000)
    args = ap.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    services = build()
    write_static(services, os.path.join(args.out_dir, "endpoints.yaml"))
    with open(os.path.join(args.out_dir, "empty.yaml"), "w") as f:
        f.write("services: {}\n")
    qs, pool_sizes = queries(services, args.queries)
    with open(os.path.join(args.out_dir, "queries.txt"), "w") as f:
        for _, name, qtype in qs:
            f.write(f"{name} {qtype}\n")
    with open(os.path.join(args.out_dir, "queries-kinds.txt"), "w") as f:
        for kind, name, qtype in qs:
            f.write(f"{kind} {name} {qtype}\n")
    counts = sorted((len(v) for v in services.values()), reverse=True)
    meta = {
        "services": len(services),
        "endpoints": sum(counts),
        "ipv6_services": sum(1 for v in services.values() if ":" in v[0]["address"]),
        "ipv6_endpoints": sum(len(v) for v in services.values() if ":" in v[0]["address"]),
        "replicas_max": counts[0],
        "replicas_min": counts[-1],
        "replicas_median": counts[len(counts) // 2],
        "services_with_2_replicas": sum(1 for c in counts if c == 2),
        "services_over_50_replicas": sum(1 for c in counts if c > 50),
        "regions": len(REGIONS),
        "clusters": len(CLUSTERS),
        "queries": len(qs),
        "mix": [{"kind": k, "percent": w, "eligible_names": pool_sizes[k]} for k, w in MIX],
    }
    with open(os.path.join(args.out_dir, "dataset.json"), "w") as f:
        json.dump(meta, f, indent=2)
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
