"""The loopback ports the tests' servers listen on."""

from __future__ import annotations

from pathlib import Path

from loopback import ephemeral_range, free_loopback_port, worker_ports


def test_ports_lie_outside_the_kernels_ephemeral_range() -> None:
    ephemeral = ephemeral_range()
    ports = [free_loopback_port() for _ in range(50)]
    assert not [port for port in ports if port in ephemeral]
    assert len(set(ports)) == len(ports)


def test_each_worker_has_its_own_ports() -> None:
    ephemeral = range(32_768, 61_000)
    shares = [set(worker_ports(f"gw{i}", ephemeral)) for i in range(4)]
    assert all(len(share) > 500 for share in shares)
    assert not set.intersection(*shares[:2]) and not shares[0] & shares[3]
    assert max(worker_ports("gw0", ephemeral)) < ephemeral.start


def test_a_low_ephemeral_range_leaves_the_ports_above_it(tmp_path: Path) -> None:
    proc = tmp_path / "ip_local_port_range"
    proc.write_text("10000\t40000\n")
    ephemeral = ephemeral_range(proc)
    assert ephemeral == range(10_000, 40_001)
    assert min(worker_ports(None, ephemeral)) > 40_000
