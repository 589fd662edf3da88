"""A run started mid-folder (``fetch`` from a mid-folder time, a daemon restart mid-folder) puts
every sample where an unbroken decode from the folder's segment 0 puts it, for both playlist
generations: real AAC/MPEG-TS segments muxed like the nodes', on the moto S3 server, through
the archive reader and the continuous decoder."""

from __future__ import annotations

import itertools
from contextlib import aclosing
from datetime import datetime, timedelta

import numpy as np
import pytest

from monitor.audio.chunks import AudioChunk
from monitor.audio.decode import decode_stream
from monitor.audio.ring import UNIX_EPOCH
from monitor.ingest.archive import ArchiveSettings, read_archive
from monitor.ingest.playlist import segment_name
from monitor.ingest.timing import TimingSettings, TimingSource
from monitor.timebase import from_epoch, samples_between
from tests.support.aac import (
    FRAME_SAMPLES,
    encode_segments,
    locate,
    noise,
    segment_first_samples,
)

E1 = 1717761600
RATE = 48000
SECONDS = 52


def hls_muxer_pdts(n_samples: int, count: int) -> dict[int, datetime]:
    """PROGRAM-DATE-TIME as the ffmpeg hls muxer stamps it: segment 0 at the folder's time
    zero, segment N later by the PTS distance of its first packet from the priming packet."""
    starts = segment_first_samples(n_samples)
    zero = from_epoch(E1 + 2)
    pdts = {0: zero}
    for number in range(1, count):
        offset = (starts[number] + FRAME_SAMPLES) * 1_000_000 // RATE
        pdts[number] = zero + timedelta(microseconds=offset)
    return pdts


async def decoded(store, node: str, start_s: float, precedence: TimingSource) -> np.ndarray:
    """(first sample index on the UTC sample clock, samples) of [E1 + start_s, end)."""
    settings = ArchiveSettings(timing=TimingSettings(precedence=precedence))
    source = read_archive(store, node, from_epoch(E1 + start_s), from_epoch(E1 + SECONDS), settings)
    chunks: list[AudioChunk] = []
    async with aclosing(decode_stream(source)) as items:
        chunks = [item async for item in items if isinstance(item, AudioChunk)]
    first = samples_between(UNIX_EPOCH, chunks[0].start_utc, RATE)
    for before, after in itertools.pairwise(chunks):
        # one run: each chunk follows on to the sample
        assert samples_between(before.start_utc, after.start_utc, RATE) == before.frames
    return first, np.concatenate([c.samples[0] for c in chunks])


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("generation", ["legacy", "program-date-time"])
async def test_mid_folder_start_equals_unbroken_decoding_to_the_sample(
    node, store, channels, generation
):
    signal = noise(SECONDS - 2, RATE, channels=channels, level=0.05, seed=5)
    datas = encode_segments(signal)
    for number, data in enumerate(datas):
        await node.put(node.key(E1, segment_name(number)), data)
    numbers = range(len(datas))
    if generation == "legacy":
        await node.put_legacy_playlist(E1, numbers)
        precedence = TimingSource.NUMBER
        starts = [31.0, 41.0]  # runs start at segments 2 and 3
    else:
        await node.put_pdt_playlist(E1, numbers, hls_muxer_pdts(signal.shape[1], len(datas)))
        precedence = TimingSource.PROGRAM_DATE_TIME
        starts = [41.0]  # segment 3: its stamp is a whole millisecond (ms in the playlist)

    whole_at, whole = await decoded(store, node.node, 2.0, precedence)
    assert whole_at == samples_between(UNIX_EPOCH, from_epoch(E1 + 2), RATE)
    for start_s in starts:
        late_at, late = await decoded(store, node.node, start_s, precedence)
        offset = late_at - whole_at
        # the fresh run's first kept frame settles the decoder: compare from the next one
        skip = FRAME_SAMPLES
        length = min(late.shape[0], whole.shape[0] - offset) - skip
        assert length > 10 * RATE
        # the same sample clock: the best match of a late second in the unbroken decode
        # lies at lag 0 (one AAC frame off was the bug)
        probe = late[skip + RATE : skip + 2 * RATE]
        around = whole[offset + skip + RATE - 2048 : offset + skip + 2 * RATE + 2048]
        assert locate(around, probe) == 2048
        if channels == 1:
            # and sample for sample (stereo noise is decoded with the decoder's own random
            # noise substitution, which differs between two decoders)
            np.testing.assert_allclose(
                late[skip : skip + length], whole[offset + skip : offset + skip + length], atol=1e-5
            )


@pytest.mark.parametrize("shift", [-32, 0, 40])
def test_a_folder_whose_priming_packet_is_a_few_samples_off_is_still_one_timeline(shift):
    # The probe's node_2026 stereo folder was 992 samples off (1024 - 32): its priming packet
    # sat 32 samples before 1.4 s. Segment 0 is placed by its PTS too, so both agree.
    from monitor.audio.decode import ContinuousDecoder
    from tests.support.aac import as_segments

    signal = noise(32, RATE, channels=2, level=0.05, seed=6)
    datas = encode_segments(signal, ts_offset_s=1.4 + shift / RATE)
    segments = as_segments(datas, folder_epoch=E1)
    whole = ContinuousDecoder().feed_all(segments)
    late = ContinuousDecoder().feed_all(segments[2:])
    zero = from_epoch(E1 + 2)
    assert samples_between(zero, whole[0].start_utc, RATE) == shift
    # segment 2's chunk from a fresh run starts one (dropped) frame after the unbroken one
    assert samples_between(whole[2].start_utc, late[0].start_utc, RATE) == FRAME_SAMPLES
    audio = np.concatenate([c.samples[0] for c in whole])
    at = samples_between(whole[0].start_utc, late[0].start_utc, RATE) + FRAME_SAMPLES
    probe = late[0].samples[0][FRAME_SAMPLES : FRAME_SAMPLES + RATE]
    assert locate(audio[at - 2048 : at + RATE + 2048], probe) == 2048
