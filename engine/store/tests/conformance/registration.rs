//! Checks: dynamic registration (new credentials, the register limit, activated devices).

use eddy_core::secret::ExposeSecret;
use eddy_store::{Registered, Store};

use crate::fixtures::*;

pub(crate) async fn register_device(store: &dyn Store) {
    store
        .insert_product(&product("REGISTER01", "register-product", 100))
        .await
        .unwrap();
    for name in ["d1", "d2", "d3"] {
        store
            .insert_device(&device("REGISTER01", name, 100))
            .await
            .unwrap();
    }
    let p = pid("REGISTER01");
    let register = |name: &'static str, psk: &'static str, limit: i64| async move {
        store
            .register_device(&pid("REGISTER01"), &dn(name), Some(psk), None, limit, 500)
            .await
            .unwrap()
    };

    assert_eq!(register("d1", "cHNrMQ==", 1).await, Registered::Done);
    let d1 = store.device(&p, &dn("d1")).await.unwrap().unwrap();
    assert_eq!(d1.psk.unwrap().expose_secret(), "cHNrMQ==");
    assert_eq!(d1.updated_at, 500);
    // The limit counts registered devices: a second one is refused, d1 may come again.
    assert_eq!(
        register("d2", "cHNrMg==", 1).await,
        Registered::LimitReached
    );
    let d2 = store.device(&p, &dn("d2")).await.unwrap().unwrap();
    assert_ne!(d2.psk.unwrap().expose_secret(), "cHNrMg==", "unchanged");
    assert_eq!(register("d1", "cHNrMw==", 1).await, Registered::Done);
    assert_eq!(register("d2", "cHNrMg==", 2).await, Registered::Done);
    assert_eq!(
        register("d3", "cHNrNA==", 2).await,
        Registered::LimitReached
    );

    // A device that connected keeps its credentials, until it is reset.
    assert!(
        store
            .device_connected(&p, &dn("d1"), "127.0.0.1", 600)
            .await
            .unwrap()
    );
    assert_eq!(register("d1", "cHNrNQ==", 2).await, Registered::Activated);
    assert!(store.reset_device_state(&p, &dn("d1")).await.unwrap());
    assert_eq!(register("d1", "cHNrNQ==", 2).await, Registered::Done);

    assert_eq!(
        register("nobody", "cHNrNg==", 9).await,
        Registered::NoDevice
    );

    // Certificate devices get a new certificate.
    assert_eq!(
        store
            .register_device(&p, &dn("d2"), None, Some("-----CERT-----"), 2, 700)
            .await
            .unwrap(),
        Registered::Done
    );
    let d2 = store.device(&p, &dn("d2")).await.unwrap().unwrap();
    assert_eq!(d2.cert_pem.as_deref(), Some("-----CERT-----"));
    assert!(d2.psk.is_none());
}
