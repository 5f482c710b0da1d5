//! `command!`: declares an options struct once, field by field, with its
//! default, binary form (`wire::Wire`) and, with feature `nif`, its rustler
//! decoder from a map of validated Elixir options.
//!
//! rustler's `NifMap` derive needs every key in the map; validated
//! options hold only the options given, so the decoder here looks each
//! key up and leaves the default where it is missing or `nil`. Every
//! value is decoded by its type's own `rustler::Decoder`.
//!
//! A field without a key (`=> field: Type = default`) is no Elixir option: the decoder leaves its
//! default, and the NIF fills it after decoding (the host's cgroup
//! layout). It has a binary form like any other field.

macro_rules! command {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $(
                $(#[doc = $doc:expr])*
                $($key:ident)? => $field:ident : $ty:ty = $default:expr
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        pub struct $name {
            $( $(#[doc = $doc])* pub $field: $ty, )*
        }

        impl $name {
            /// Every field's name and type, in order: what the binary
            /// form's version is computed from (`wire::VERSION`).
            pub const LAYOUT: &'static str =
                concat!($( stringify!($field), ":", stringify!($ty), ";" ),*);
        }

        impl Default for $name {
            fn default() -> Self {
                $name { $( $field: $default, )* }
            }
        }

        impl $crate::wire::Wire for $name {
            fn put(&self, out: &mut Vec<u8>) {
                $( $crate::wire::Wire::put(&self.$field, out); )*
            }

            fn take(r: &mut $crate::wire::Reader<'_>) -> Result<Self, $crate::wire::WireError> {
                Ok($name { $( $field: $crate::wire::Wire::take(r)?, )* })
            }
        }

        #[cfg(feature = "nif")]
        impl<'a> rustler::Decoder<'a> for $name {
            fn decode(term: rustler::Term<'a>) -> rustler::NifResult<Self> {
                let mut value = $name::default();
                $( command!(@decode value, term, [$($key)?], $field); )*
                Ok(value)
            }
        }
    };

    // Filled by the NIF, not decoded.
    (@decode $value:ident, $term:ident, [], $field:ident) => {};
    (@decode $value:ident, $term:ident, [$key:ident], $field:ident) => {{
        // One atom per key, made once per VM (rustler's cache).
        mod key {
            rustler::atoms! { $key }
        }
        if let Some(v) = $crate::nif::field($term, key::$key(), stringify!($key))? {
            $value.$field = v;
        }
    }};
}
