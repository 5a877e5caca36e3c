//! # eddy-plugin-sdk — Eddy destination plugins in Rust
//!
//! A destination plugin receives the rows a rule selected, one batch at a time, and sends
//! them somewhere through the host's connectors (`mqtt`, `http`, `kafka`, `pulsar`, `sql`),
//! within the grants of its destination. The contract is the WIT package in `wit/`
//! (`eddy:plugin@0.1.0`); this crate is its Rust binding plus a [`Destination`] trait so a
//! plugin is one short, safe file:
//!
//! ```ignore
//! use eddy_plugin_sdk::{Batch, DeliveryError, Destination, log};
//!
//! struct Echo;
//!
//! impl Destination for Echo {
//!     fn configure(_config: &str) -> Result<Self, String> {
//!         Ok(Echo)
//!     }
//!     fn deliver(&mut self, batch: &Batch) -> Result<(), DeliveryError> {
//!         log::log(log::Level::Info, &format!("{} rows", batch.len()));
//!         Ok(())
//!     }
//! }
//!
//! eddy_plugin_sdk::export_destination!(Echo);
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2` (crate type `cdylib`); the
//! `.wasm` in `target/wasm32-wasip2/release/` is a component Eddy loads.

#![allow(unsafe_code)] // wit-bindgen's generated glue; none in the hand-written part

use std::cell::RefCell;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "destination",
        pub_export_macro: true,
        export_macro_name: "__export_destination_world",
        default_bindings_module: "eddy_plugin_sdk::bindings",
    });
}

pub use bindings::eddy::plugin::types::{
    Batch, ConnectorError, DeliveryError, MetaColumns, Packed, RejectedRow, RetryAfter, RowMeta,
};
pub use bindings::eddy::plugin::{http, kafka, log, metrics, mqtt, pulsar, sql};

/// What a failed connector call usually means for the batch: `unavailable` is worth a
/// retry; `permission-denied` and `invalid` never succeed (permanent: the error action
/// and the dead letters get the batch).
impl From<ConnectorError> for DeliveryError {
    fn from(error: ConnectorError) -> Self {
        match error {
            ConnectorError::Unavailable(why) => DeliveryError::Retry(why),
            ConnectorError::PermissionDenied(why) => {
                DeliveryError::Permanent(format!("permission denied: {why}"))
            }
            ConnectorError::Invalid(why) => DeliveryError::Permanent(why),
        }
    }
}

/// Byte strings in one buffer (`types.packed` in the WIT): what `Batch::payloads` and
/// `Batch::meta_columns` return and `kafka::produce_packed` takes.
impl Packed {
    /// Empty, with room for `items` items of `bytes` bytes in all.
    pub fn with_capacity(items: usize, bytes: usize) -> Self {
        Self {
            data: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(items),
        }
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Item `index`; none past the end (or when the ends are malformed).
    pub fn get(&self, index: usize) -> Option<&[u8]> {
        let end = *self.ends.get(index)? as usize;
        let start = match index {
            0 => 0,
            _ => self.ends[index - 1] as usize,
        };
        self.data.get(start..end)
    }

    /// Every item, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        (0..self.len()).map(|i| self.get(i).unwrap_or_default())
    }

    /// Appends one item.
    pub fn push(&mut self, item: &[u8]) {
        self.data.extend_from_slice(item);
        self.end_item();
    }

    /// Ends the current item: whatever was written to `data` since the previous end (for
    /// writing an item in place, e.g. with `serde_json::to_writer(&mut packed.data, …)`).
    pub fn end_item(&mut self) {
        // A guest's memory is 32-bit: its buffers cannot pass u32::MAX.
        self.ends
            .push(u32::try_from(self.data.len()).unwrap_or(u32::MAX));
    }
}

/// A destination: configured once, then given batches.
pub trait Destination: Sized + 'static {
    /// Reads the destination's configuration (JSON text). An error refuses it.
    fn configure(config: &str) -> Result<Self, String>;

    /// Delivers one batch; see `wit/plugin.wit` for what each error makes the host do.
    fn deliver(&mut self, batch: &Batch) -> Result<(), DeliveryError>;
}

thread_local! {
    static INSTANCE: RefCell<Option<Box<dyn std::any::Any>>> = const { RefCell::new(None) };
}

/// The glue between the generated world and a [`Destination`]; used by
/// [`export_destination!`].
#[doc(hidden)]
#[derive(Debug)]
pub struct Plugin<T>(std::marker::PhantomData<T>);

impl<T: Destination> bindings::Guest for Plugin<T> {
    fn configure(config: String) -> Result<(), String> {
        let instance = T::configure(&config)?;
        INSTANCE.with(|slot| *slot.borrow_mut() = Some(Box::new(instance)));
        Ok(())
    }

    fn deliver(batch: &Batch) -> Result<(), DeliveryError> {
        INSTANCE.with(|slot| {
            let mut slot = slot.borrow_mut();
            match slot.as_mut().and_then(|b| b.downcast_mut::<T>()) {
                Some(instance) => instance.deliver(batch),
                None => Err(DeliveryError::Permanent(
                    "deliver called before configure".into(),
                )),
            }
        })
    }
}

/// Exports a [`Destination`] type as the plugin's `destination` world.
#[macro_export]
macro_rules! export_destination {
    ($t:ty) => {
        type __EddyDestinationPlugin = $crate::Plugin<$t>;
        $crate::bindings::__export_destination_world!(__EddyDestinationPlugin with_types_in $crate::bindings);
    };
}

/// Logs at info level through the host.
pub fn info(message: &str) {
    log::log(log::Level::Info, message);
}

/// Logs at warn level through the host.
pub fn warn(message: &str) {
    log::log(log::Level::Warn, message);
}
