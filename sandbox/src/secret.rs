//! Locked, dump-excluded memory for secrets.
//!
//! [`Locked<T>`] places one value (for cvx-signer: the `ed25519_dalek::SigningKey`, i.e.
//! the seed and its public key) in a page mapping of its own, next to a scratch area the
//! caller decrypts the key file into:
//!
//! * **memfd_secret** (Linux ≥ 5.14, enabled by default since 6.5) where the kernel has
//!   it: the pages are removed from the kernel's direct map, are never swapped, are
//!   excluded from core dumps and cannot be read through `/proc/PID/mem` or `ptrace`
//!   even by root. smaps shows the mapping as `/secretmem (deleted)` with flags `lo dd`.
//! * otherwise an anonymous private mapping with `mlock` (never swapped),
//!   `MADV_DONTDUMP` (not in core dumps) and `MADV_WIPEONFORK` (a forked child sees
//!   zeros). smaps flags `lo dd wf`.
//!
//! The value is built by the caller's closure and written straight into the mapping;
//! the closure's stack frame (where the value was assembled) is then overwritten by a
//! stack scrub, the scratch area is zeroed, and on drop the value's own `Drop` runs
//! (`SigningKey` zeroizes itself) before the whole mapping is zeroed and unmapped.
//!
//! Why the whole `SigningKey` and not just the seed: `SigningKey` holds the seed and the
//! derived public key; keeping it in place costs one derivation at start, where
//! rebuilding it per signature from a locked seed would put a fresh copy of the seed on
//! the stack for every signature (and double the signing cost). ed25519-dalek's
//! per-signature expanded secret is a stack temporary that it zeroizes on drop.

#![allow(unsafe_code)]

use core::fmt;
use core::marker::PhantomData;
use core::ptr::NonNull;

use zeroize::Zeroize;

/// Which kernel mechanism backs a [`Locked`] mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backing {
    /// `memfd_secret(2)`: not in the kernel direct map, not dumpable, not readable via
    /// /proc/PID/mem.
    SecretMem,
    /// Anonymous mapping with mlock + MADV_DONTDUMP + MADV_WIPEONFORK.
    LockedAnonymous,
}

impl Backing {
    /// Short name for logs.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::SecretMem => "memfd_secret",
            Self::LockedAnonymous => "mlock+dontdump+wipeonfork",
        }
    }
}

/// Which backings to try.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prefer {
    /// memfd_secret, falling back to a locked anonymous mapping.
    Auto,
    /// Only a locked anonymous mapping (tests of the fallback path).
    LockedAnonymous,
}

/// Why locked memory could not be set up, or the initializer failed.
#[derive(Debug, thiserror::Error)]
pub enum LockedError<E> {
    /// The value does not fit the layout rules (alignment above a page).
    #[error("a {0}-byte-aligned value cannot be placed in locked memory")]
    Layout(usize),
    /// mmap failed.
    #[error("cannot map memory for the secret: {0}")]
    Map(std::io::Error),
    /// mlock failed.
    #[error(
        "cannot lock the secret's memory (mlock: {0}); raise the memory-lock limit (systemd: LimitMEMLOCK=, shell: ulimit -l)"
    )]
    Lock(std::io::Error),
    /// madvise failed.
    #[error("cannot exclude the secret's memory from core dumps (madvise: {0})")]
    Advise(std::io::Error),
    /// The caller's initializer failed (the mapping was wiped and unmapped).
    #[error(transparent)]
    Init(E),
}

fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n).ok().filter(|p| *p > 0).unwrap_or(4096)
}

fn round_up(n: usize, to: usize) -> usize {
    n.div_ceil(to) * to
}

/// A raw locked page mapping, wiped and unmapped on drop.
struct Region {
    ptr: NonNull<u8>,
    len: usize,
    backing: Backing,
}

impl Region {
    fn new<E>(len: usize, prefer: Prefer) -> Result<Self, LockedError<E>> {
        if prefer == Prefer::Auto
            && let Some(r) = Self::secretmem(len)
        {
            return Ok(r);
        }
        Self::anonymous(len)
    }

    fn secretmem(len: usize) -> Option<Self> {
        // SAFETY: memfd_secret takes one flags argument and returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_memfd_secret, 0) };
        let fd = i32::try_from(fd).ok().filter(|fd| *fd >= 0)?;
        let off = libc::off_t::try_from(len).ok()?;
        // SAFETY: `fd` is the descriptor just returned, owned here.
        let sized = unsafe { libc::ftruncate(fd, off) } == 0;
        let ptr = if sized {
            // SAFETY: a fresh shared mapping of `len` bytes of our own fd; no existing
            // memory is affected (address chosen by the kernel).
            unsafe {
                libc::mmap(
                    core::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    fd,
                    0,
                )
            }
        } else {
            libc::MAP_FAILED
        };
        // SAFETY: `fd` is ours; the mapping (if any) keeps the memory alive without it.
        unsafe { libc::close(fd) };
        if ptr == libc::MAP_FAILED {
            return None;
        }
        let ptr = NonNull::new(ptr.cast::<u8>())?;
        Some(Self {
            ptr,
            len,
            backing: Backing::SecretMem,
        })
    }

    fn anonymous<E>(len: usize) -> Result<Self, LockedError<E>> {
        // SAFETY: a fresh private anonymous mapping; the kernel picks the address.
        let ptr = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(LockedError::Map(std::io::Error::last_os_error()));
        }
        let Some(nn) = NonNull::new(ptr.cast::<u8>()) else {
            return Err(LockedError::Map(std::io::Error::other(
                "mmap returned null",
            )));
        };
        // From here `region` owns the mapping: an early return unmaps it.
        let region = Self {
            ptr: nn,
            len,
            backing: Backing::LockedAnonymous,
        };
        // SAFETY: `ptr..ptr+len` is the mapping created above.
        if unsafe { libc::mlock(ptr, len) } != 0 {
            return Err(LockedError::Lock(std::io::Error::last_os_error()));
        }
        for advice in [libc::MADV_DONTDUMP, libc::MADV_WIPEONFORK] {
            // SAFETY: advice on our own mapping; neither advice discards data we hold
            // (the mapping is still all zeros).
            if unsafe { libc::madvise(ptr, len, advice) } != 0 {
                return Err(LockedError::Advise(std::io::Error::last_os_error()));
            }
        }
        Ok(region)
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: the mapping is `len` readable and writable bytes, owned by `self`,
        // and the `&mut self` borrow makes this the only live reference.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        self.bytes_mut().zeroize();
        // SAFETY: unmapping the mapping this value owns; no reference into it
        // outlives `self` (Locked's borrows are tied to it).
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// A value of type `T` living in locked, dump-excluded memory. No `Clone`, no
/// `Display`; `Debug` is redacted. Dereferences to `&T`, and to `&mut T` through an
/// exclusive borrow (it owns its value as a `Box` does), so a buffer can be filled in
/// place without a copy outside the mapping.
pub struct Locked<T> {
    region: Region,
    _value: PhantomData<T>,
}

// SAFETY: Locked<T> owns its T exactly like a Box<T> does (the mapping is private to
// this value); sending or sharing it is as safe as sending or sharing T.
unsafe impl<T: Send> Send for Locked<T> {}
// SAFETY: as above; `&Locked<T>` only hands out `&T`.
unsafe impl<T: Sync> Sync for Locked<T> {}

impl<T> Locked<T> {
    /// Map locked memory with room for a `T` and `scratch_len` scratch bytes, call
    /// `init` with the (zeroed) scratch area, place the `T` it returns in the mapping,
    /// then zero the scratch area and scrub the stack below this frame (where `init`
    /// assembled the value).
    ///
    /// Typical use: decrypt the key file into the scratch area, derive the key from it
    /// and return the key; no copy of the plaintext ever lands on the heap.
    ///
    /// # Errors
    /// [`LockedError`] when the memory cannot be mapped or locked, or `init` fails
    /// (the mapping is wiped either way).
    pub fn new_with<E>(
        scratch_len: usize,
        prefer: Prefer,
        init: impl FnOnce(&mut [u8]) -> Result<T, E>,
    ) -> Result<Self, LockedError<E>> {
        let page = page_size();
        let align = align_of::<T>();
        if align > page {
            return Err(LockedError::Layout(align));
        }
        let scratch_at = round_up(size_of::<T>().max(1), 64);
        let len = round_up(scratch_at + scratch_len.max(1), page);
        let mut region = Region::new::<E>(len, prefer)?;
        let placed = place::<T, E>(&mut region, scratch_at, scratch_len, init);
        region.bytes_mut()[scratch_at..].zeroize();
        scrub_stack();
        placed.map_err(LockedError::Init)?;
        Ok(Self {
            region,
            _value: PhantomData,
        })
    }

    /// The mechanism backing this value.
    #[must_use]
    pub fn backing(&self) -> Backing {
        self.region.backing
    }
}

/// Run `init` and move its value into the start of the region. Kept out of line so its
/// frame (holding the value before the move) lies in the area [`scrub_stack`] wipes.
#[inline(never)]
fn place<T, E>(
    region: &mut Region,
    scratch_at: usize,
    scratch_len: usize,
    init: impl FnOnce(&mut [u8]) -> Result<T, E>,
) -> Result<(), E> {
    let value = init(&mut region.bytes_mut()[scratch_at..scratch_at + scratch_len])?;
    // SAFETY: the region is page-aligned (>= align_of::<T>(), checked by the caller),
    // at least size_of::<T>() bytes long before `scratch_at`, writable, and holds no
    // value yet; `Locked` drops exactly this one value.
    unsafe { region.ptr.as_ptr().cast::<T>().write(value) };
    Ok(())
}

/// Overwrite 64 KiB of stack below the caller with zeros.
#[inline(never)]
fn scrub_stack() {
    let mut area = [0u8; 64 * 1024];
    area.zeroize();
    core::hint::black_box(&mut area);
}

impl<T> core::ops::Deref for Locked<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: `new_with` wrote a valid T at the start of the region, and it stays
        // there, unaliased mutably, until `drop`.
        unsafe { &*self.region.ptr.as_ptr().cast::<T>() }
    }
}

impl<T> core::ops::DerefMut for Locked<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as for `deref`; `&mut self` guarantees no other borrow of the value
        // exists for the lifetime of the returned reference.
        unsafe { &mut *self.region.ptr.as_ptr().cast::<T>() }
    }
}

impl<T> Drop for Locked<T> {
    fn drop(&mut self) {
        // SAFETY: the T written by `new_with` is dropped exactly once, here; the region
        // (zeroed and unmapped by its own Drop right after) is not read again.
        unsafe { core::ptr::drop_in_place(self.region.ptr.as_ptr().cast::<T>()) };
    }
}

impl<T> fmt::Debug for Locked<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Locked<{}>(<redacted>, {})",
            core::any::type_name::<T>(),
            self.region.backing.name()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smaps_flags_for(addr: usize) -> String {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut in_it = false;
        for line in smaps.lines() {
            let range = line.split_once(' ').and_then(|(r, _)| r.split_once('-'));
            if let Some((a, b)) = range
                && let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
            {
                in_it = (a..b).contains(&addr);
                continue;
            }
            if in_it && let Some(flags) = line.strip_prefix("VmFlags:") {
                return flags.to_owned();
            }
        }
        panic!("mapping not found");
    }

    #[test]
    fn both_backings_hold_value_locked_and_undumpable() {
        for prefer in [Prefer::Auto, Prefer::LockedAnonymous] {
            let locked = Locked::<[u64; 4]>::new_with(72, prefer, |scratch| {
                assert_eq!(scratch.len(), 72);
                assert!(scratch.iter().all(|b| *b == 0));
                scratch.fill(0xAB);
                Ok::<_, ()>([1, 2, 3, 4])
            })
            .unwrap();
            assert_eq!(*locked, [1, 2, 3, 4]);
            let addr = core::ptr::from_ref::<[u64; 4]>(&locked) as usize;
            let flags = smaps_flags_for(addr);
            assert!(
                flags.contains(" lo") && flags.contains(" dd"),
                "{prefer:?}: flags {flags}"
            );
            if locked.backing() == Backing::LockedAnonymous {
                assert!(flags.contains(" wf"), "flags {flags}");
            }
            assert!(format!("{locked:?}").contains("redacted"));
        }
    }

    #[test]
    fn init_error_is_returned() {
        let r = Locked::<u32>::new_with(8, Prefer::Auto, |_| Err::<u32, _>("nope"));
        assert!(matches!(r, Err(LockedError::Init("nope"))));
    }

    #[test]
    fn value_drop_runs() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static DROPS: AtomicUsize = AtomicUsize::new(0);
        struct D;
        impl Drop for D {
            fn drop(&mut self) {
                DROPS.fetch_add(1, Ordering::SeqCst);
            }
        }
        let l = Locked::<D>::new_with(1, Prefer::Auto, |_| Ok::<_, ()>(D)).unwrap();
        drop(l);
        assert_eq!(DROPS.load(Ordering::SeqCst), 1);
    }
}
