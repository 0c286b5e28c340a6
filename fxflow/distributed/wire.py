"""Point-to-point transfer of one value between two ranks over torch.distributed.

A value is any pytree (tuples, lists, dicts, namedtuples) of tensors and plain Python values
(ints, None, strings). It travels as one message: a length, a pickled skeleton of the value
(each tensor replaced by its shape, dtype and offset, plus a key naming the value) and one
flat byte payload holding every tensor. A value too large for the receiver's standing buffer
(`FIRST_BYTES`), or a payload that travels over CUDA, sends its payload as a second message.

Messages are self-describing, so a receiver reads whatever its peer sent next and keeps
values it does not need yet: sender and receiver need not agree on an order beyond the
per-pair order that every backend guarantees. Each receiver keeps one receive posted per
peer (gloo accepts a shorter message into a longer buffer), so a sender's message leaves at
once instead of waiting for the receiver to ask for it: on a busy machine every hand-off
between processes costs a scheduling slice, and this saves one per value.

The first message always goes over the CPU backend (gloo); a payload goes over CUDA (nccl)
only when both ends are CUDA devices and the process group has a CUDA backend.
"""

from __future__ import annotations

import pickle
import time
from dataclasses import dataclass
from typing import Any, Hashable

import torch
import torch.distributed as dist
import torch.utils._pytree as pytree

FIRST_BYTES = 1 << 20  # the receive each rank keeps posted per peer; larger values take a second message
_LEN = 8  # little-endian length of the pickled header, at the start of the first message
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
        self.posted: dict[int, tuple[Any, torch.Tensor]] = {}  # peer -> (work, buffer) of its next first message

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
                offset = _aligned(total)
                nbytes = leaf.numel() * leaf.element_size()
                skeleton_leaves.append(_TensorSlot(tuple(leaf.shape), leaf.dtype, offset, nbytes))
                tensors.append((offset, leaf))
                total = offset + nbytes
                nbytes_total += nbytes
            else:
                skeleton_leaves.append(leaf)
        header = pickle.dumps((key, pytree.tree_unflatten(skeleton_leaves, spec), total))
        inline = _inline_at(len(header), total, wire)
        size = inline + total if inline is not None else min(_LEN + len(header), FIRST_BYTES)
        first = torch.empty(size, dtype=torch.uint8)
        first[:_LEN] = torch.frombuffer(bytearray(len(header).to_bytes(_LEN, "little")), dtype=torch.uint8)
        first[_LEN : _LEN + len(header)] = torch.frombuffer(bytearray(header[: size - _LEN]), dtype=torch.uint8)
        buffers = [first]
        if _LEN + len(header) > FIRST_BYTES:
            buffers.append(torch.frombuffer(bytearray(header[FIRST_BYTES - _LEN :]), dtype=torch.uint8))
        if inline is not None:
            first[inline:] = _pack(tensors, total, wire)
        elif total:
            buffers.append(_pack(tensors, total, wire))
        works = [dist.isend(b, dst) for b in buffers]
        return Sent(works, buffers, nbytes_total, len(header))

    def recv(self, key: Hashable, src: int) -> Received:
        """The value named `key` from `src`, reading (and keeping) what `src` sent before it."""
        while key not in self.inbox:
            self._read_one(src)
        return self.inbox.pop(key)

    def post(self, src: int) -> None:
        """Keep a receive for `src`'s next first message posted."""
        if src not in self.posted:
            buffer = torch.empty(FIRST_BYTES, dtype=torch.uint8)
            self.posted[src] = (dist.irecv(buffer, src), buffer)

    def _read_one(self, src: int) -> None:
        start = time.perf_counter()
        self.post(src)
        work, first = self.posted.pop(src)
        work.wait()
        length = int.from_bytes(first[:_LEN].numpy().tobytes(), "little")
        body = first[_LEN : min(_LEN + length, FIRST_BYTES)].numpy().tobytes()
        if _LEN + length > FIRST_BYTES:
            rest = torch.empty(_LEN + length - FIRST_BYTES, dtype=torch.uint8)
            dist.recv(rest, src)
            body += rest.numpy().tobytes()
        key, skeleton, total = pickle.loads(body)
        wire = self.wire_device(src)
        inline = _inline_at(length, total, wire)
        if inline is not None:
            payload = first[inline : inline + total]
        else:
            payload = torch.empty(total, dtype=torch.uint8, device=wire)
            if total:
                dist.recv(payload, src)
        self.post(src)
        local = self.devices[self.rank]
        leaves, spec = pytree.tree_flatten(skeleton)
        nbytes = 0
        for i, leaf in enumerate(leaves):
            if isinstance(leaf, _TensorSlot):
                view = payload[leaf.offset : leaf.offset + leaf.nbytes].view(leaf.dtype).reshape(leaf.shape)
                # an inline tensor is copied out, so the standing buffer is not kept alive by it
                leaves[i] = view.clone() if inline is not None and local.type == "cpu" else view.to(local)
                nbytes += leaf.nbytes
        self.inbox[key] = Received(pytree.tree_unflatten(leaves, spec), nbytes, length, time.perf_counter() - start)


def _aligned(offset: int) -> int:
    return -(-offset // _ALIGN) * _ALIGN


def _inline_at(header_length: int, total: int, wire: torch.device) -> int | None:
    """Where the payload rides inside the first message, or None when it travels on its own
    (too large, or over CUDA). Sender and receiver decide alike from the same figures."""
    at = _aligned(_LEN + header_length)
    return at if wire.type == "cpu" and at + total <= FIRST_BYTES else None


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
