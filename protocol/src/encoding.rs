//! Canonical encoding: postcard over serde types, exactly one encoding per value.
//!
//! [`Canonical::decode`] is the only way bytes become a value anywhere in cvx. It
//!
//! 1. refuses input longer than the type's cap before looking at it,
//! 2. decodes with postcard, where every collection is a [`BoundedVec`] or
//!    [`BoundedString`] whose declared length is checked against its cap *before*
//!    anything is allocated for it,
//! 3. refuses trailing bytes,
//! 4. re-encodes the value and refuses the input unless it is byte-identical — this one
//!    check rules out every non-canonical form (over-long varints and anything else),
//!    so "one encoding per value" holds by construction rather than by enumeration,
//! 5. runs the type's semantic validation (sorted sets, consistent points, ...).

use core::cell::Cell;
use core::fmt;
use core::marker::PhantomData;

use serde::de::{self, DeserializeOwned, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::hash::{Hash, hash};

/// Why bytes did not decode. Every variant maps to the `FORMAT` result code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The whole input is longer than the type can ever be.
    #[error("{what}: input is {len} bytes, above the cap of {cap} bytes")]
    TooLong {
        /// The type being decoded.
        what: &'static str,
        /// Input length.
        len: usize,
        /// The type's cap.
        cap: usize,
    },
    /// A collection declared more elements than its cap allows (nothing was allocated).
    #[error("{what}: a {field} declares {count} elements, above its cap of {cap}")]
    OverCap {
        /// The type being decoded.
        what: &'static str,
        /// The collection's element kind.
        field: &'static str,
        /// Declared (or counted) elements.
        count: u64,
        /// The cap.
        cap: u64,
    },
    /// A field's bytes are not a valid value of the field's type.
    #[error("{what}: invalid field: {reason}")]
    Field {
        /// The type being decoded.
        what: &'static str,
        /// What is wrong with the field.
        reason: &'static str,
    },
    /// The bytes are not a postcard encoding of the type (truncated, bad tag, ...).
    #[error("{what}: malformed encoding: {detail}")]
    Malformed {
        /// The type being decoded.
        what: &'static str,
        /// Postcard's description.
        detail: String,
    },
    /// The value ended before the input did.
    #[error("{what}: {extra} trailing bytes after the value")]
    Trailing {
        /// The type being decoded.
        what: &'static str,
        /// How many bytes were left over.
        extra: usize,
    },
    /// The bytes decode, but are not the one canonical encoding of the value.
    #[error("{what}: not the canonical encoding of its value")]
    NonCanonical {
        /// The type being decoded.
        what: &'static str,
    },
    /// The value is well-formed but breaks a rule of its type.
    #[error("{what}: invalid value: {reason}")]
    Invalid {
        /// The type being decoded.
        what: &'static str,
        /// The rule broken.
        reason: &'static str,
    },
}

impl DecodeError {
    /// The stable result code of every decode failure.
    #[must_use]
    pub const fn code(&self) -> crate::codes::ErrorCode {
        crate::codes::ErrorCode::Format
    }
}

/// A field-level rejection raised inside serde, carried out of postcard (whose error
/// type has no room for a message) through a thread-local slot.
#[derive(Debug, Clone, Copy)]
enum Rejection {
    OverCap {
        field: &'static str,
        count: u64,
        cap: u64,
    },
    Field(&'static str),
}

thread_local! {
    static REJECTION: Cell<Option<Rejection>> = const { Cell::new(None) };
}

fn reject<E: de::Error>(r: Rejection) -> E {
    REJECTION.with(|c| c.set(Some(r)));
    E::custom(match r {
        Rejection::OverCap { field, .. } => field,
        Rejection::Field(reason) => reason,
    })
}

/// Raise a field-level rejection from a `TryFrom`/visitor inside a decode.
pub(crate) fn field_error<E: de::Error>(reason: &'static str) -> E {
    reject(Rejection::Field(reason))
}

/// A value with exactly one byte encoding.
pub trait Canonical: Serialize + DeserializeOwned {
    /// Name used in errors.
    const NAME: &'static str;
    /// The longest encoding any valid value of this type can have.
    const MAX_LEN: usize;

    /// Semantic rules beyond the field types (called by [`Canonical::decode`]).
    ///
    /// # Errors
    /// [`DecodeError::Invalid`] naming the rule.
    fn validate(&self) -> Result<(), DecodeError> {
        Ok(())
    }

    /// The canonical encoding.
    fn encode(&self) -> Vec<u8> {
        // Infallible for cvx types: postcard's serializer only fails for unsized
        // sequences and `collect_str` errors, and no cvx type uses either.
        postcard::to_allocvec(self).expect("cvx types always encode")
    }

    /// The content address: the hash of the canonical encoding.
    fn hash(&self) -> Hash {
        hash(&self.encode())
    }

    /// Strict decode (see the module documentation for every check).
    ///
    /// # Errors
    /// A [`DecodeError`] naming the first rule the input breaks.
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let what = Self::NAME;
        if bytes.len() > Self::MAX_LEN {
            return Err(DecodeError::TooLong {
                what,
                len: bytes.len(),
                cap: Self::MAX_LEN,
            });
        }
        REJECTION.with(|c| c.set(None));
        let (value, rest) = match postcard::take_from_bytes::<Self>(bytes) {
            Ok(v) => v,
            Err(e) => {
                return Err(match REJECTION.with(Cell::take) {
                    Some(Rejection::OverCap { field, count, cap }) => DecodeError::OverCap {
                        what,
                        field,
                        count,
                        cap,
                    },
                    Some(Rejection::Field(reason)) => DecodeError::Field { what, reason },
                    None => DecodeError::Malformed {
                        what,
                        detail: e.to_string(),
                    },
                });
            }
        };
        if !rest.is_empty() {
            return Err(DecodeError::Trailing {
                what,
                extra: rest.len(),
            });
        }
        if value.encode() != bytes {
            return Err(DecodeError::NonCanonical { what });
        }
        value.validate()?;
        Ok(value)
    }
}

/// Helper for `validate` implementations.
pub(crate) fn ensure(
    what: &'static str,
    ok: bool,
    reason: &'static str,
) -> Result<(), DecodeError> {
    if ok {
        Ok(())
    } else {
        Err(DecodeError::Invalid { what, reason })
    }
}

/// A `Vec` whose length is capped at `CAP`; decoding checks the declared length
/// before allocating. Encoded as postcard's `varint(len) ‖ elements`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct BoundedVec<T, const CAP: usize>(Vec<T>);

impl<T, const CAP: usize> BoundedVec<T, CAP> {
    /// The cap.
    pub const CAP: usize = CAP;

    /// An empty vector.
    #[must_use]
    pub const fn new() -> Self {
        Self(Vec::new())
    }

    /// Wrap `v` if it is within the cap; otherwise give it back.
    ///
    /// # Errors
    /// Returns `v` unchanged when `v.len() > CAP`.
    pub fn try_from_vec(v: Vec<T>) -> Result<Self, Vec<T>> {
        if v.len() <= CAP { Ok(Self(v)) } else { Err(v) }
    }

    /// Append, unless full.
    ///
    /// # Errors
    /// Returns `item` when the vector already holds `CAP` elements.
    pub fn try_push(&mut self, item: T) -> Result<(), T> {
        if self.0.len() < CAP {
            self.0.push(item);
            Ok(())
        } else {
            Err(item)
        }
    }

    /// The elements.
    #[must_use]
    pub fn as_slice(&self) -> &[T] {
        &self.0
    }

    /// Unwrap into the inner `Vec`.
    #[must_use]
    pub fn into_vec(self) -> Vec<T> {
        self.0
    }

    /// Number of elements.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<T, const CAP: usize> core::ops::Deref for BoundedVec<T, CAP> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.0
    }
}

impl<T: fmt::Debug, const CAP: usize> fmt::Debug for BoundedVec<T, CAP> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<T: Serialize, const CAP: usize> Serialize for BoundedVec<T, CAP> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de, T: Deserialize<'de>, const CAP: usize> Deserialize<'de> for BoundedVec<T, CAP> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T, const CAP: usize>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>, const CAP: usize> Visitor<'de> for V<T, CAP> {
            type Value = BoundedVec<T, CAP>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a sequence of at most {CAP} elements")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let over = |count: usize| {
                    reject(Rejection::OverCap {
                        field: core::any::type_name::<T>(),
                        count: count as u64,
                        cap: CAP as u64,
                    })
                };
                // postcard reports the declared length when the input could hold it,
                // and None when it could not (then the elements run out first).
                let mut out = match seq.size_hint() {
                    Some(n) if n > CAP => return Err(over(n)),
                    Some(n) => Vec::with_capacity(n),
                    None => Vec::new(),
                };
                while let Some(item) = seq.next_element()? {
                    if out.len() == CAP {
                        return Err(over(CAP + 1));
                    }
                    out.push(item);
                }
                Ok(BoundedVec(out))
            }
        }
        d.deserialize_seq(V::<T, CAP>(PhantomData))
    }
}

/// A `String` of printable ASCII (0x20..=0x7e), at most `CAP` bytes.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct BoundedString<const CAP: usize>(String);

impl<const CAP: usize> BoundedString<CAP> {
    /// Validate and wrap.
    ///
    /// # Errors
    /// A static reason when `s` is too long or not printable ASCII.
    pub fn new(s: &str) -> Result<Self, &'static str> {
        if s.len() > CAP {
            return Err("string longer than its cap");
        }
        if !s.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
            return Err("string holds a byte outside printable ASCII");
        }
        Ok(Self(s.to_owned()))
    }

    /// The text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<const CAP: usize> fmt::Debug for BoundedString<CAP> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<const CAP: usize> fmt::Display for BoundedString<CAP> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<const CAP: usize> Serialize for BoundedString<CAP> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de, const CAP: usize> Deserialize<'de> for BoundedString<CAP> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<const CAP: usize>;
        impl<const CAP: usize> Visitor<'_> for V<CAP> {
            type Value = BoundedString<CAP>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "printable ASCII of at most {CAP} bytes")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                if v.len() > CAP {
                    return Err(reject(Rejection::OverCap {
                        field: "string",
                        count: v.len() as u64,
                        cap: CAP as u64,
                    }));
                }
                BoundedString::new(v).map_err(field_error)
            }
        }
        d.deserialize_str(V::<CAP>)
    }
}

/// serde for `[u8; N]` of any `N` as a tuple (postcard: the `N` raw bytes).
pub(crate) mod byte_array {
    use super::{PhantomData, SeqAccess, SerializeTuple, Serializer, Visitor, de, fmt};

    pub(crate) fn serialize<S: Serializer, const N: usize>(
        v: &[u8; N],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(N)?;
        for b in v {
            t.serialize_element(b)?;
        }
        t.end()
    }

    pub(crate) fn deserialize<'de, D: de::Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<[u8; N], D::Error> {
        struct V<const N: usize>(PhantomData<[u8; N]>);
        impl<'de, const N: usize> Visitor<'de> for V<N> {
            type Value = [u8; N];
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{N} bytes")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<[u8; N], A::Error> {
                let mut out = [0u8; N];
                for (i, slot) in out.iter_mut().enumerate() {
                    *slot = seq
                        .next_element()?
                        .ok_or_else(|| de::Error::invalid_length(i, &self))?;
                }
                Ok(out)
            }
        }
        d.deserialize_tuple(N, V::<N>(PhantomData))
    }
}
