"""The run-time allocator setting: large blocks reused from the heap, defaults put back after."""

import ctypes
import platform

import pytest

from letitwag.harness import allocator


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt tuning applies to glibc only")
def test_settings_are_applied_for_the_block_and_restored(monkeypatch):
    calls = []
    libc = ctypes.CDLL("libc.so.6")

    class RecordingLibc:
        def mallopt(self, parameter, value):
            calls.append(("mallopt", parameter, value))
            return libc.mallopt(parameter, value)

        def malloc_trim(self, pad):
            calls.append(("malloc_trim", pad))
            return libc.malloc_trim(pad)

    monkeypatch.setattr(allocator, "_glibc", RecordingLibc)
    with allocator.reuse_freed_memory() as changed:
        assert changed is True
        assert calls == [("mallopt", allocator.M_MMAP_MAX, 0),
                         ("mallopt", allocator.M_TRIM_THRESHOLD, allocator.RUN_TRIM_THRESHOLD)]
        big = bytearray(64 * 1024 * 1024)  # above any mmap threshold: now served by the heap
        del big
    assert calls[2:] == [("mallopt", allocator.M_MMAP_MAX, allocator.DEFAULT_MMAP_MAX),
                         ("mallopt", allocator.M_TRIM_THRESHOLD, allocator.DEFAULT_TRIM_THRESHOLD),
                         ("malloc_trim", 0)]


def test_other_c_libraries_are_left_alone(monkeypatch):
    monkeypatch.setattr(allocator, "_glibc", lambda: None)
    with allocator.reuse_freed_memory() as changed:
        assert changed is False


def test_settings_are_restored_when_the_run_fails(monkeypatch):
    restored = []

    class FakeLibc:
        def mallopt(self, parameter, value):
            restored.append((parameter, value))
            return 1

        def malloc_trim(self, pad):
            restored.append(("trim", pad))
            return 1

    monkeypatch.setattr(allocator, "_glibc", FakeLibc)
    with pytest.raises(RuntimeError), allocator.reuse_freed_memory():
        raise RuntimeError("model failed")
    assert restored[-1] == ("trim", 0) and (allocator.M_MMAP_MAX, allocator.DEFAULT_MMAP_MAX) in restored
