"""Point-to-point transfer of one value between two ranks over torch.distributed.

A value is any pytree (tuples, lists, dicts, namedtuples) of tensors and plain Python values
(ints, None, strings). It travels as one byte stream: a length, a pickled skeleton of the value
(each tensor replaced by its shape, dtype and offset, plus a key naming the value), then one
flat payload holding every tensor. The stream is cut into chunks of at most `CHUNK_BYTES`,
each one message; a value of up to 256 KiB of tensors (and a header under `HEADER_ROOM`) is one.

Every receiver keeps `STANDING` receives of `CHUNK_BYTES` posted per peer (gloo accepts a
shorter message into a longer buffer), so a sender's chunks leave at once instead of each
waiting for the receiver to ask for it: on a busy machine every hand-off between processes
costs a scheduling slice, and streamed micro-batches would pay one per chunk.

Messages are self-describing, so a receiver reads whatever its peer sent next and keeps values
it does not need yet: sender and receiver need not agree on an order beyond the per-pair order
that every backend guarantees (gloo matches a peer's messages to posted receives first in,
first out).

The stream always goes over the CPU backend (gloo); when both ends are CUDA devices and the
process group has a CUDA backend (nccl), the payload leaves the stream and goes over CUDA as a
message of its own.
"""

from __future__ import annotations

import pickle
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Hashable

import torch
import torch.distributed as dist
import torch.utils._pytree as pytree

# Largest message, and the size of each standing receive: 256 KiB of payload plus room for the
# header, so that a value whose payload is a power of two up to 256 KiB (most activations) is one
# message, not a full chunk and a sliver, each a hand-off between processes. Measured on two idle
# cores (UnevenTowers over two workers, the fastest request of 8 fresh runs each): a plan sending
# four 256 KiB values between the workers went from 9.46 to 8.61 ms a request, one sending five
# from 9.49 to 8.73 ms.
HEADER_ROOM = 4096
CHUNK_BYTES = 256 * 1024 + HEADER_ROOM
STANDING = 4  # receives kept posted per peer
_LEN = 8  # little-endian length of the pickled header, at the start of a stream
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
        self.posted: dict[int, deque[tuple[Any, torch.Tensor]]] = {}  # peer -> standing receives, oldest first

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
        at = _aligned(_LEN + len(header))
        apart = wire.type != "cpu"
        stream = torch.empty(at + (0 if apart else total), dtype=torch.uint8)
        stream[:_LEN] = torch.frombuffer(bytearray(len(header).to_bytes(_LEN, "little")), dtype=torch.uint8)
        stream[_LEN : _LEN + len(header)] = torch.frombuffer(bytearray(header), dtype=torch.uint8)
        buffers = [stream]
        if total and not apart:
            _pack(tensors, stream[at:], wire)
        chunks = [stream[i : i + CHUNK_BYTES] for i in range(0, stream.numel(), CHUNK_BYTES)]
        works = [dist.isend(chunk, dst) for chunk in chunks]
        if total and apart:
            payload = torch.empty(total, dtype=torch.uint8, device=wire)
            _pack(tensors, payload, wire)
            buffers.append(payload)
            works.append(dist.isend(payload, dst))
        return Sent(works, buffers, nbytes_total, len(header))

    def recv(self, key: Hashable, src: int) -> Received:
        """The value named `key` from `src`, reading (and keeping) what `src` sent before it."""
        while key not in self.inbox:
            self._read_one(src)
        return self.inbox.pop(key)

    def _take(self, src: int) -> torch.Tensor:
        """The next chunk from `src`, keeping `STANDING` receives posted for the ones after it."""
        posted = self.posted.setdefault(src, deque())
        while len(posted) < STANDING + 1:
            buffer = torch.empty(CHUNK_BYTES, dtype=torch.uint8)
            posted.append((dist.irecv(buffer, src), buffer))
        work, buffer = posted.popleft()
        work.wait()
        return buffer

    def _read_one(self, src: int) -> None:
        start = time.perf_counter()
        chunks = [self._take(src)]
        length = int.from_bytes(chunks[0][:_LEN].numpy().tobytes(), "little")
        while len(chunks) * CHUNK_BYTES < _LEN + length:  # a header longer than a chunk
            chunks.append(self._take(src))
        head = chunks[0] if len(chunks) == 1 else torch.cat(chunks)
        key, skeleton, total = pickle.loads(head[_LEN : _LEN + length].numpy().tobytes())
        at = _aligned(_LEN + length)
        wire = self.wire_device(src)
        if wire.type != "cpu":
            payload = torch.empty(total, dtype=torch.uint8, device=wire)
            if total:
                dist.recv(payload, src)
        elif at + total <= CHUNK_BYTES:
            payload = chunks[0][at : at + total]
        else:
            stream = torch.empty(at + total, dtype=torch.uint8)
            for i in range(-(-stream.numel() // CHUNK_BYTES)):
                chunk = chunks[i] if i < len(chunks) else self._take(src)
                piece = stream[i * CHUNK_BYTES : (i + 1) * CHUNK_BYTES]
                piece.copy_(chunk[: piece.numel()])
            payload = stream[at:]
        local = self.devices[self.rank]
        single = wire.type == "cpu" and at + total <= CHUNK_BYTES
        leaves, spec = pytree.tree_flatten(skeleton)
        nbytes = 0
        for i, leaf in enumerate(leaves):
            if isinstance(leaf, _TensorSlot):
                view = payload[leaf.offset : leaf.offset + leaf.nbytes].view(leaf.dtype).reshape(leaf.shape)
                # a tensor read out of a standing receive is copied, so the chunk buffer is not kept alive by it
                leaves[i] = view.clone() if single and local.type == "cpu" else view.to(local)
                nbytes += leaf.nbytes
        self.inbox[key] = Received(pytree.tree_unflatten(leaves, spec), nbytes, length, time.perf_counter() - start)


def _aligned(offset: int) -> int:
    return -(-offset // _ALIGN) * _ALIGN


def _pack(tensors: list[tuple[int, torch.Tensor]], payload: torch.Tensor, wire: torch.device) -> None:
    """Copy every tensor into the flat byte `payload` at its offset.

    Always a copy: the sender may change a tensor in place while its send is in flight.
    """
    for offset, t in tensors:
        if t.numel():
            flat = t.detach().to(wire).contiguous().reshape(-1).view(torch.uint8)
            payload[offset : offset + flat.numel()] = flat
