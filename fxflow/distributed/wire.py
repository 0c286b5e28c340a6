"""Point-to-point transfer of one value between two ranks over torch.distributed.

A value is any pytree (tuples, lists, dicts, namedtuples) of tensors and plain Python values
(ints, None, strings). It travels as two messages: a fixed-size header (a pickled skeleton of
the value with each tensor replaced by its shape, dtype and offset, plus a key naming the value)
and one flat byte payload holding every tensor. Messages are self-describing, so a receiver
reads whatever its peer sent next and keeps values it does not need yet: sender and receiver
need not agree on an order beyond the per-pair order that every backend guarantees.

The header always goes over the CPU backend (gloo); the payload goes over CUDA (nccl) only
when both ends are CUDA devices and the process group has a CUDA backend, else over the CPU.
"""

from __future__ import annotations

import pickle
import time
from dataclasses import dataclass
from typing import Any, Hashable

import torch
import torch.distributed as dist
import torch.utils._pytree as pytree

HEADER_BYTES = 512
_LEN = 8  # int64 length of the pickled header, at the start of the header message
_ALIGN = 16  # payload offsets are aligned so that every tensor can be a view of the payload


@dataclass(frozen=True)
class _TensorSlot:
    shape: tuple[int, ...]
    dtype: torch.dtype
    offset: int
    nbytes: int


@dataclass
class Sent:
    """An in-flight send: keep it until `wait` so its buffers stay alive."""

    works: list[Any]
    buffers: list[torch.Tensor]
    payload_bytes: int
    header_bytes: int

    def wait(self) -> None:
        for work in self.works:
            work.wait()
        self.works.clear()
        self.buffers.clear()


@dataclass
class Received:
    value: Any
    payload_bytes: int
    header_bytes: int
    read_s: float  # time spent blocked reading this value's messages


class Wire:
    """Sends and receives values for one rank; `devices` maps every rank to its torch device."""

    def __init__(self, rank: int, devices: dict[int, str], cuda_backend: bool):
        self.rank = rank
        self.devices = {r: torch.device(d) for r, d in devices.items()}
        self.cuda_backend = cuda_backend
        self.inbox: dict[Hashable, Received] = {}

    def wire_device(self, peer: int) -> torch.device:
        both_cuda = self.devices[self.rank].type == "cuda" and self.devices[peer].type == "cuda"
        return self.devices[self.rank] if both_cuda and self.cuda_backend else torch.device("cpu")

    def send(self, key: Hashable, value: Any, dst: int) -> Sent:
        wire = self.wire_device(dst)
        leaves, spec = pytree.tree_flatten(value)
        tensors, skeleton_leaves, total, nbytes_total = [], [], 0, 0
        for leaf in leaves:
            if isinstance(leaf, torch.Tensor):
                if leaf.layout != torch.strided:
                    raise TypeError(f"value {key!r}: only strided tensors can be sent, got layout {leaf.layout}")
                offset = -(-total // _ALIGN) * _ALIGN
                nbytes = leaf.numel() * leaf.element_size()
                skeleton_leaves.append(_TensorSlot(tuple(leaf.shape), leaf.dtype, offset, nbytes))
                tensors.append((offset, leaf))
                total = offset + nbytes
                nbytes_total += nbytes
            else:
                skeleton_leaves.append(leaf)
        header = pickle.dumps((key, pytree.tree_unflatten(skeleton_leaves, spec), total))
        works, buffers = [], []
        for message in _header_messages(header):
            buffers.append(message)
            works.append(dist.isend(message, dst))
        if total:
            payload = _pack(tensors, total, wire)
            buffers.append(payload)
            works.append(dist.isend(payload, dst))
        return Sent(works, buffers, nbytes_total, len(header))

    def recv(self, key: Hashable, src: int) -> Received:
        """The value named `key` from `src`, reading (and keeping) what `src` sent before it."""
        while key not in self.inbox:
            self._read_one(src)
        return self.inbox.pop(key)

    def _read_one(self, src: int) -> None:
        start = time.perf_counter()
        first = torch.empty(HEADER_BYTES, dtype=torch.uint8)
        dist.recv(first, src)
        length = int(first[:_LEN].view(torch.int64).item())
        body = first[_LEN : _LEN + length]
        if length > HEADER_BYTES - _LEN:
            rest = torch.empty(length - (HEADER_BYTES - _LEN), dtype=torch.uint8)
            dist.recv(rest, src)
            body = torch.cat([body, rest])
        key, skeleton, total = pickle.loads(body.numpy().tobytes())
        payload = None
        if total:
            payload = torch.empty(total, dtype=torch.uint8, device=self.wire_device(src))
            dist.recv(payload, src)
        local = self.devices[self.rank]
        leaves, spec = pytree.tree_flatten(skeleton)
        nbytes = 0
        for i, leaf in enumerate(leaves):
            if isinstance(leaf, _TensorSlot):
                raw = payload[leaf.offset : leaf.offset + leaf.nbytes] if payload is not None else torch.empty(0, dtype=torch.uint8)
                leaves[i] = raw.view(leaf.dtype).reshape(leaf.shape).to(local)
                nbytes += leaf.nbytes
        self.inbox[key] = Received(pytree.tree_unflatten(leaves, spec), nbytes, length, time.perf_counter() - start)


def _header_messages(header: bytes) -> list[torch.Tensor]:
    first = torch.zeros(HEADER_BYTES, dtype=torch.uint8)
    first[:_LEN] = torch.tensor([len(header)], dtype=torch.int64).view(torch.uint8)
    inline = header[: HEADER_BYTES - _LEN]
    first[_LEN : _LEN + len(inline)] = torch.frombuffer(bytearray(inline), dtype=torch.uint8)
    rest = header[HEADER_BYTES - _LEN :]
    return [first] + ([torch.frombuffer(bytearray(rest), dtype=torch.uint8)] if rest else [])


def _pack(tensors: list[tuple[int, torch.Tensor]], total: int, wire: torch.device) -> torch.Tensor:
    """One flat byte buffer on the wire device holding every tensor at its offset.

    Always a copy: the sender may change a tensor in place while its send is in flight.
    """
    payload = torch.empty(total, dtype=torch.uint8, device=wire)
    for offset, t in tensors:
        if t.numel():
            flat = t.detach().to(wire).contiguous().reshape(-1).view(torch.uint8)
            payload[offset : offset + flat.numel()] = flat
    return payload
