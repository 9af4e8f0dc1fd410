"""``energizeos bag record|info``: rosbag2 files (MCAP storage by default, as ROS 2 Jazzy) via rosbags.

The bytes stored are the CDR payloads exactly as they travelled, so ``ros2 bag``, Foxglove and
rosbags' reader open the bag with the message definitions embedded.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer
import yaml
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rosbags.rosbag2 import Reader, Writer
from rosbags.rosbag2.writer import StoragePlugin

from energizeos.home import subdir

app = typer.Typer(help="Record and inspect rosbag2 files.", no_args_is_help=True)
console = Console(stderr=True)
STORAGE = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}


@app.command()
def record(
    topics: list[str] = typer.Argument(None, help="Topics to record (default: every topic in the graph)."),
    output: str = typer.Option("", "-o", "--output", help="Bag directory (default: $ENERGIZEOS_HOME/bags/<time>)."),
    duration: float = typer.Option(0.0, "--duration", "-d", help="Stop after this many seconds (0: Ctrl-C)."),
    storage: str = typer.Option("mcap", "--storage", "-s", help="mcap (ROS 2 Jazzy default) or sqlite3."),
    discovery: float = typer.Option(1.5, help="Seconds to discover topics before recording starts."),
) -> None:
    """Record topics of the running graph into a rosbag2 directory."""
    from energizeos.cli.graph_tools import cli_node, discover
    from energizeos_msgs import message_class, typestore

    if storage not in STORAGE:
        raise typer.BadParameter(f"storage must be one of {', '.join(STORAGE)}, got {storage!r}")
    path = Path(output) if output else subdir("bags") / time.strftime("%Y%m%d-%H%M%S")
    if path.exists():
        raise typer.BadParameter(f"{path} already exists; rosbag2 needs a new directory")
    counts: dict[str, int] = {}
    with cli_node() as (executor, node):
        discover(executor, discovery)
        known = dict(executor.graph_topics())
        wanted = topics or sorted(known)
        missing = [t for t in wanted if t not in known]
        if missing:
            console.print(f"[red]error:[/] no publisher or subscriber on {', '.join(missing)}: type unknown")
            raise typer.Exit(1)
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = Writer(path, version=9, storage_plugin=STORAGE[storage])
        writer.open()
        recording = True
        try:
            for topic in wanted:
                type_name = known[topic][0]
                conn = writer.add_connection(topic, type_name, typestore=typestore())
                counts[topic] = 0

                def write(payload: bytes, conn=conn, topic=topic) -> None:
                    if not recording:
                        return  # arrived while shutting down, after the bag was closed
                    writer.write(conn, node.get_clock().now().nanoseconds, payload)
                    counts[topic] += 1

                node.create_subscription(message_class(type_name), topic, write, 1000, raw=True)
            console.print(f"recording {len(wanted)} topic(s) to {path} ({storage}); Ctrl-C to stop")
            _spin_recording(executor, duration, counts)
        finally:
            recording = False
            writer.close()
    console.print(f"wrote {sum(counts.values())} messages to {path}")
    for topic, n in counts.items():
        print(f"{topic}: {n}")


def _spin_recording(executor, duration: float, counts: dict[str, int]) -> None:
    try:
        if not duration:
            executor.spin()
            return
        with Progress(TextColumn("{task.description}"), BarColumn(), TimeRemainingColumn(),
                      console=console, transient=True) as progress:
            task = progress.add_task("recording", total=duration)
            end = time.monotonic() + duration
            while (left := end - time.monotonic()) > 0:
                executor.spin_once(min(left, 0.1))
                progress.update(task, completed=duration - max(left, 0),
                                description=f"recording {sum(counts.values())} msgs")
    except KeyboardInterrupt:
        pass


@app.command()
def info(path: str) -> None:
    """Topics, types, counts and time span of a rosbag2 directory."""
    bag = Path(path)
    if not (bag / "metadata.yaml").is_file():
        console.print(f"[red]error:[/] {bag} is not a rosbag2 directory (no metadata.yaml)")
        raise typer.Exit(1)
    metadata = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    with Reader(bag) as reader:
        out = Console()
        out.print(f"Files:      {', '.join(metadata['relative_file_paths'])}")
        out.print(f"Storage id: {metadata['storage_identifier']}")
        out.print(f"Duration:   {reader.duration / 1e9:.3f} s")
        out.print(f"Start:      {reader.start_time / 1e9:.3f}")
        out.print(f"End:        {reader.end_time / 1e9:.3f}")
        out.print(f"Messages:   {reader.message_count}")
        table = Table("topic", "type", "count", "serialization")
        for conn in reader.connections:
            table.add_row(conn.topic, conn.msgtype, str(conn.msgcount), conn.ext.serialization_format)
        out.print(table)
