"""Merge the benchmark programs' JSON results and regenerate the benchmark page and its plots.

Called by run.sh as the last step. Reads one JSON file per program from --results, writes
results.json and the PNG plots to --out-dir and the Markdown page to --doc. With
--from-results-json instead of --results, it redraws the page and plots from an earlier
results.json without measuring. The page's analysis of missed targets comes from findings.md
next to this script and is copied in unchanged.
"""

import argparse
import datetime
import json
import os
import platform
import subprocess
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).resolve().parent
NOT_MEASURED = "not measured"
# Path of the plot folder as seen from the page; set in main().
image_folder = "benchmarks"


def load_results(folder):
    """Return the sections found in `folder`, keyed by section name; memory parts are merged."""
    sections = {}
    for path in sorted(Path(folder).glob("*.json")):
        text = path.read_text().strip()
        if not text:
            continue
        result = json.loads(text)
        name = result["section"]
        if name == "memory":
            sections.setdefault("memory", {})[result["part"]] = result
        else:
            sections[name] = result
    return sections


def machine():
    """Describe the machine the run happened on."""
    cpu = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as meminfo:
        total_kib = int(meminfo.readline().split()[1])

    def command_output(*command):
        try:
            return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "unknown"

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(total_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "rustc": command_output("rustc", "--version"),
        "python": platform.python_version(),
        "commit": commit_description(command_output),
        "load_average_at_end": os.getloadavg()[0],
    }


def commit_description(command_output):
    """Return the short commit id, marked when the work tree had uncommitted changes."""
    commit = command_output("git", "rev-parse", "--short", "HEAD")
    if command_output("git", "status", "--porcelain", "--untracked-files=no"):
        commit += " with uncommitted changes"
    return commit


def fmt_rate(value):
    return "—" if value is None else f"{value:,.0f}"


def fmt_ratio(value):
    return "—" if value is None else f"{value:.2f}x"


def ratio(value, reference):
    if value is None or not reference:
        return None
    return value / reference


def rate_at(section, variant, callers):
    """Return the requests per second of `variant` at `callers`, or None."""
    if not section:
        return None
    for entry in section["variants"]:
        if entry["name"] == variant:
            for point in entry["points"]:
                if point["callers"] == callers:
                    return point["requests_per_second"]
    return None


class Page:
    """The Markdown page under construction, and the target checks collected on the way."""

    def __init__(self):
        self.lines = []
        self.targets = []

    def add(self, *lines):
        self.lines.extend(lines)

    def table(self, header, rows):
        self.add("| " + " | ".join(header) + " |", "|" + "---|" * len(header))
        for row in rows:
            self.add("| " + " | ".join(str(cell) for cell in row) + " |")
        self.add("")

    def target(self, description, measured, met):
        if met is None:
            verdict = NOT_MEASURED
        elif met:
            verdict = "met"
        else:
            verdict = "**missed**"
        self.targets.append((description, measured, verdict))


def routing_section(page, routing):
    page.add("## 1. Routing cost", "")
    if not routing:
        page.add(f"Section {NOT_MEASURED}.", "")
        return
    page.add(
        f"Nanoseconds per pick over {routing['connections']} registered connections (a real pool's "
        "connections, all open to the benchmark server), as one thread sees it; the median of "
        f"{routing['rounds']} samples of {routing['iterations_per_sample']:,} picks per thread. "
        "Allocations per pick are counted per thread after a warm-up. Reference: "
        "`baseline_atomic`, one shared `fetch_add` plus one snapshot load.",
        "",
    )
    rows = []
    for threads in (1, 2):
        entries = [v for v in routing["variants"] if v["threads"] == threads]
        baseline = next(v["ns_per_pick"] for v in entries if v["name"] == "baseline_atomic")
        for entry in entries:
            rows.append(
                (
                    f"`{entry['name']}`",
                    entry["description"],
                    threads,
                    f"{entry['ns_per_pick']:.1f}",
                    fmt_ratio(ratio(entry["ns_per_pick"], baseline)),
                    f"{entry['allocations_per_pick']:g}",
                )
            )
            if entry["name"] == "round_robin":
                within = entry["ns_per_pick"] <= 1.5 * baseline
                page.target(
                    f"round_robin pick at most 1.5x the baseline, {threads} thread(s)",
                    fmt_ratio(ratio(entry["ns_per_pick"], baseline)),
                    within,
                )
                page.target(
                    f"round_robin pick makes 0 allocations, {threads} thread(s)",
                    f"{entry['allocations_per_pick']:g}",
                    entry["allocations_per_pick"] == 0,
                )
    page.table(("variant", "what", "threads", "ns/pick", "ratio to baseline", "allocations/pick"), rows)


def throughput_table(page, section, reference_name, reference_label):
    """Add a table of every variant's rate per caller count, with the ratio to the reference."""
    counts = [point["callers"] for point in section["variants"][0]["points"]]
    header = ["variant"] + [f"{count} callers" for count in counts]
    rows = []
    for entry in section["variants"]:
        cells = [f"`{entry['name']}`"]
        for count in counts:
            value = rate_at(section, entry["name"], count)
            reference = reference_name(count)
            cells.append(f"{fmt_rate(value)} ({fmt_ratio(ratio(value, reference))})")
        rows.append(cells)
    page.add(f"Requests per second, and in brackets the ratio to {reference_label}.", "")
    page.table(header, rows)


def plot_throughput(path, sections_and_titles):
    """Plot requests per second against callers, one line per variant, one panel per section."""
    panels = [(s, t) for s, t in sections_and_titles if s]
    figure, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), squeeze=False)
    for axis, (section, title) in zip(axes[0], panels):
        for entry in section["variants"]:
            points = entry["points"]
            axis.plot(
                [p["callers"] for p in points],
                [p["requests_per_second"] for p in points],
                marker="o",
                label=entry["name"],
            )
        axis.set_xscale("log", base=2)
        axis.set_xlabel("concurrent callers")
        axis.set_ylabel("requests per second")
        axis.set_title(title)
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def closed_loop_section(page, closed):
    page.add("## 2. Rust, closed loop", "")
    if not closed:
        page.add(f"Section {NOT_MEASURED}.", "")
        return
    reference = closed["reference"]
    page.add(
        f"Each caller is a task on one shared 2-thread tokio runtime that sends a "
        f"{closed['payload_bytes']}-byte request, waits for the echo and sends the next. Every "
        f"variant uses {closed['connections']} connections to the same server process. Each "
        f"figure is the median of {closed['rounds']} samples of {closed['seconds_per_sample']:g} s; "
        "the variants take turns within each round. The hand-written pipelined tokio client "
        "(`benches/common/pipelined.rs`) runs twice: `pipelined` keeps its connections on the "
        f"callers' runtime, and `{reference}`, the reference, keeps them on a second 2-thread "
        "runtime, as the pool keeps its connections on the library's own runtime.",
        "",
    )
    throughput_table(
        page, closed, lambda count: rate_at(closed, reference, count), f"`{reference}` at the same concurrency"
    )
    page.add("![Rust throughput against callers](" + image_folder + "/throughput_rust.png)", "")

    for strategy in ("pool_round_robin", "pool_random"):
        pool = rate_at(closed, strategy, 64)
        limit = rate_at(closed, reference, 64)
        checkout = rate_at(closed, "checkout_deadpool", 64)
        if pool is None:
            continue
        page.target(
            f"{strategy} at 64 callers at least 0.9x `{reference}`",
            fmt_ratio(ratio(pool, limit)),
            ratio(pool, limit) >= 0.9,
        )
        page.target(
            f"{strategy} at 64 callers at least 4x `checkout_deadpool`",
            fmt_ratio(ratio(pool, checkout)),
            ratio(pool, checkout) >= 4,
        )


def c_section(page, c_results, closed):
    page.add("## 3. C ABI", "")
    if not c_results:
        page.add(
            f"Section {NOT_MEASURED}: `fanta-ffi` or `include/fanta.h` did not build in this run.", ""
        )
        page.target("C async at least 0.9x the Rust pool", NOT_MEASURED, None)
        page.target("C blocking threads at least 0.6x the Rust pool", NOT_MEASURED, None)
        return
    page.add(c_results.get("about", ""), "")
    throughput_table(
        page,
        c_results,
        lambda count: rate_at(closed, "pool_round_robin", count),
        "the Rust pool (`pool_round_robin`, section 2) at the same concurrency",
    )
    page.add("![C throughput against callers](" + image_folder + "/throughput_c.png)", "")
    for name, minimum in (("c_async", 0.9), ("c_blocking_threads", 0.6)):
        value = rate_at(c_results, name, 64)
        rust = rate_at(closed, "pool_round_robin", 64)
        page.target(
            f"`{name}` at 64 callers at least {minimum}x the Rust pool",
            fmt_ratio(ratio(value, rust)),
            None if ratio(value, rust) is None else ratio(value, rust) >= minimum,
        )


def python_section(page, python):
    page.add("## 4. Python", "")
    if not python:
        page.add(f"Section {NOT_MEASURED}: the `fanta` module did not build or import in this run.", "")
        page.target("fanta.AsyncPool at least 2x the pure-Python asyncio client", NOT_MEASURED, None)
        page.target("fanta.Pool from 16 threads at least 2x socket-per-thread", NOT_MEASURED, None)
        return
    page.add(python.get("about", ""), "")
    pairs = python["reference_pairs"]

    def reference(count, entry_name):
        return rate_at(python, pairs[entry_name], count) if entry_name in pairs else None

    counts = [point["callers"] for point in python["variants"][0]["points"]]
    rows = []
    for entry in python["variants"]:
        cells = [f"`{entry['name']}`"]
        for count in counts:
            value = rate_at(python, entry["name"], count)
            cells.append(f"{fmt_rate(value)} ({fmt_ratio(ratio(value, reference(count, entry['name'])))})")
        rows.append(cells)
    page.add(
        "Requests per second; in brackets the ratio of each `fanta` variant to the pure-Python "
        "client of the same concurrency model (`fanta.AsyncPool` to the asyncio client, "
        "`fanta.Pool` to socket-per-thread).",
        "",
    )
    page.table(["variant"] + [f"{c} callers" for c in counts], rows)
    page.add("![Python throughput against callers](" + image_folder + "/throughput_python.png)", "")

    best = python["target_callers"]
    for name, description in (
        ("fanta_async_pool", "fanta.AsyncPool at least 2x the pure-Python asyncio client"),
        ("fanta_pool_threads", "fanta.Pool from 16 threads at least 2x socket-per-thread"),
    ):
        callers = best[name]
        value = ratio(rate_at(python, name, callers), rate_at(python, pairs[name], callers))
        page.target(f"{description} ({callers} callers)", fmt_ratio(value), None if value is None else value >= 2)


def plot_latency(path, latency):
    """Plot p50, p99 and p99.9 per load level, pool beside direct, on a log scale."""
    levels = sorted({p["load"] for p in latency["points"]})
    quantiles = (("p50_us", "p50"), ("p99_us", "p99"), ("p999_us", "p99.9"))
    figure, axes = plt.subplots(1, len(levels), figsize=(5 * len(levels), 4.5), squeeze=False)
    for axis, level in zip(axes[0], levels):
        points = {p["variant"]: p for p in latency["points"] if p["load"] == level}
        width = 0.38
        for offset, variant in enumerate(("direct", "pool")):
            values = [points[variant][key] for key, _ in quantiles]
            positions = [i + (offset - 0.5) * width for i in range(len(quantiles))]
            axis.bar(positions, values, width, label=variant)
        axis.set_xticks(range(len(quantiles)), [label for _, label in quantiles])
        axis.set_yscale("log")
        axis.set_ylabel("latency from intended send time (µs)")
        axis.set_title(f"{level:.0%} of max ({points['pool']['rate']:,.0f} req/s)")
        axis.grid(True, axis="y", alpha=0.3)
        axis.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def latency_section(page, latency):
    page.add("## 5. Latency, open loop", "")
    if not latency:
        page.add(f"Section {NOT_MEASURED}.", "")
        return
    page.add(
        "Requests are sent at a fixed rate and each latency is counted from the request's intended "
        "send time, so a stall delays the requests queued behind it in the figures too (the wrk2 "
        f"method). The maximum, {latency['maximum_rate']:,.0f} req/s, is the pool's closed-loop "
        f"rate with {latency['maximum_callers']} callers, measured by the same program just before. "
        f"Each point is {latency['seconds_per_point']:g} s, taken in {latency['segments_per_point']} "
        "segments that alternate between the variants. `pool` is the routing pool with "
        f"{latency['pool_connections']} connections; `direct` (the reference) is the hand-written "
        "pipelined client on one connection. Both send from the same 2-thread tokio runtime; a "
        "pacing thread starts each request, and its wake-up delay is in both variants' figures.",
        "",
    )
    rows = []
    for point in latency["points"]:
        direct = next(
            p for p in latency["points"] if p["variant"] == "direct" and p["load"] == point["load"]
        )
        added = point["p50_us"] - direct["p50_us"]
        rows.append(
            (
                f"{point['load']:.0%}",
                f"{point['rate']:,.0f}",
                f"`{point['variant']}`",
                f"{point['p50_us']:,.1f}",
                f"{point['p99_us']:,.1f}",
                f"{point['p999_us']:,.1f}",
                "" if point["variant"] == "direct" else f"{added:+,.1f}",
            )
        )
        if point["variant"] == "pool" and point["load"] == 0.1:
            page.target("added p50 latency of the pool at 10% load at most 5 µs", f"{added:+.1f} µs", added <= 5)
    page.table(
        ("load", "rate (req/s)", "variant", "p50 (µs)", "p99 (µs)", "p99.9 (µs)", "p50 added over direct (µs)"),
        rows,
    )
    page.add("![Latency percentiles per load level](" + image_folder + "/latency.png)", "")


def memory_section(page, memory):
    page.add("## 6. Memory", "")
    if not memory:
        page.add(f"Section {NOT_MEASURED}.", "")
        return
    page.add(
        "Resident memory is the change of the benchmark process's resident set size. Heap is the "
        "change of live heap bytes counted by a wrapping global allocator (exact, but without "
        "kernel socket buffers and allocator slack). Each part runs in a process of its own.",
        "",
    )

    rows = []
    idle = memory.get("idle")
    if idle:
        rows.append(
            (
                f"per idle connection ({idle['connections']:,} connections)",
                f"{idle['resident_bytes_per_unit']:,.0f} B",
                f"{idle['heap_bytes_per_unit']:,.0f} B",
            )
        )
        page.target(
            "at most 64 KiB resident per idle connection",
            f"{idle['resident_bytes_per_unit'] / 1024:.1f} KiB",
            idle["resident_bytes_per_unit"] <= 64 * 1024,
        )

    in_flight = memory.get("in_flight")
    if in_flight:
        rows.append(
            (
                f"per request in flight ({in_flight['requests']:,} requests)",
                f"{in_flight['resident_bytes_per_unit']:,.0f} B",
                f"{in_flight['heap_bytes_per_unit']:,.0f} B",
            )
        )
        page.target(
            "at most 256 bytes per request in flight",
            f"{in_flight['resident_bytes_per_unit']:,.0f} B",
            in_flight["resident_bytes_per_unit"] <= 256,
        )

    growth = memory.get("growth")
    if growth:
        resident_growth = growth["resident_after"] - growth["resident_before"]
        heap_growth = growth["heap_after"] - growth["heap_before"]
        rows.append(
            (
                f"growth over {growth['requests']:,} requests ({growth['callers']} callers, "
                f"after {growth['warmup_requests']:,} warm-up requests)",
                f"{resident_growth:+,.0f} B",
                f"{heap_growth:+,.0f} B",
            )
        )
        # Buffers that grew to a new peak during the run (socket read buffers, the runtime's
        # queues) show as a one-time step, so up to 64 KiB in total counts as no growth.
        page.target(
            f"no growth over {growth['requests']:,} requests (live heap within 64 KiB)",
            f"{heap_growth:+,.0f} B heap, {resident_growth:+,.0f} B resident",
            heap_growth <= 64 * 1024,
        )

    page.table(("measure", "resident", "heap"), rows)
    if in_flight and in_flight.get("allocations_by_size"):
        sizes = ", ".join(
            f"{entry['per_request']:.2f} × {entry['bytes']} B" for entry in in_flight["allocations_by_size"]
        )
        page.add(f"Heap allocations per request while the requests were queued, by size: {sizes}.", "")


def write_page(path, sections, meta):
    page = Page()
    page.add(
        "# Benchmarks",
        "",
        "<!-- Generated by fanta-core/benches/run.sh (report.py); edit those files, not this page. -->",
        "",
        "The routing pool beside the best a hand-written client can do and beside what users would "
        "pick instead. The machine is shared and noisy, so every claim below is a ratio of two "
        "variants measured in the same run against the same `fanta-server` process (release "
        "build, started by the script as a separate process on loopback).",
        "",
        "Rerun with:",
        "",
        "```sh",
        meta["command"],
        "```",
        "",
        "`--quick` takes about 3 minutes on 2 cores, the full run under 20; `--smoke` only checks "
        "that every section runs and writes to `target/benchmarks-smoke/`. Raw figures: "
        f"[{image_folder}/results.json]({image_folder}/results.json).",
        "",
        "## Machine and run",
        "",
    )
    m = meta["machine"]
    page.table(
        ("what", "value"),
        (
            ("CPU", f"{m['cpu']}, {m['cores']} cores"),
            ("memory", f"{m['memory_gib']} GiB"),
            ("kernel", m["kernel"]),
            ("Rust", m["rustc"]),
            ("Python", m["python"]),
            ("commit", m["commit"]),
            ("profile", meta["profile"]),
            ("date (UTC)", meta["date"]),
            ("duration", f"{meta['seconds']} s"),
            ("load average (1 min) at the end", f"{m['load_average_at_end']:.2f}"),
        ),
    )

    routing_section(page, sections.get("routing"))
    closed_loop_section(page, sections.get("closed_loop"))
    c_section(page, sections.get("c"), sections.get("closed_loop"))
    python_section(page, sections.get("python"))
    latency_section(page, sections.get("latency"))
    memory_section(page, sections.get("memory"))

    body = page.lines
    page.lines = []
    page.add("## Targets", "")
    page.table(("target", "this run", "verdict"), page.targets)
    targets = page.lines

    findings_path = HERE / "findings.md"
    findings = findings_path.read_text().rstrip("\n").split("\n") if findings_path.exists() else []
    Path(path).write_text("\n".join(body + targets + findings) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--results", help="folder of the programs' JSON results")
    source.add_argument(
        "--from-results-json",
        help="regenerate the page and plots from an earlier results.json, without measuring",
    )
    parser.add_argument("--profile", help="smoke, quick or full (with --results)")
    parser.add_argument("--command", help="the command that reproduces the run (with --results)")
    parser.add_argument("--seconds", type=int, help="duration of the run in seconds (with --results)")
    parser.add_argument("--out-dir", required=True, help="folder for results.json and the plots")
    parser.add_argument("--doc", required=True, help="path of the Markdown page to write")
    args = parser.parse_args()

    global image_folder
    image_folder = os.path.relpath(Path(args.out_dir).resolve(), Path(args.doc).resolve().parent)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.from_results_json:
        stored = json.loads(Path(args.from_results_json).read_text())
        sections, meta = stored["sections"], stored["meta"]
    else:
        if args.profile is None or args.command is None or args.seconds is None:
            parser.error("--results needs --profile, --command and --seconds")
        sections = load_results(args.results)
        meta = {
            "command": args.command,
            "profile": args.profile,
            "seconds": args.seconds,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
            "machine": machine(),
        }
        (out_dir / "results.json").write_text(json.dumps({"meta": meta, "sections": sections}, indent=1) + "\n")

    plot_throughput(out_dir / "throughput_rust.png", [(sections.get("closed_loop"), "Rust, 4 connections")])
    if sections.get("c"):
        plot_throughput(out_dir / "throughput_c.png", [(sections["c"], "C ABI, 4 connections")])
    if sections.get("python"):
        plot_throughput(out_dir / "throughput_python.png", [(sections["python"], "Python, 4 connections")])
    if sections.get("latency"):
        plot_latency(out_dir / "latency.png", sections["latency"])

    write_page(args.doc, sections, meta)


if __name__ == "__main__":
    main()
