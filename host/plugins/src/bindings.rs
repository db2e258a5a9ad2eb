//! Host-side bindings generated from `wit/connector.wit`: one module per
//! world the host instantiates, all sharing the `types` interface.

/// The host's own import (`local-fs`) and the shared types.
pub mod imports {
    wasmtime::component::bindgen!({ path: "../../wit", world: "local-fs-user" });
}

pub use imports::kast::connector::local_fs;
pub use imports::kast::connector::types;

pub mod storage {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "storage",
        // Calls run as futures, so a deadline can end one that waits.
        exports: { default: async },
        with: { "kast:connector/types@0.1.0": crate::bindings::types },
    });
}

pub mod source {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "source",
        // Calls run as futures, so a deadline can end one that waits.
        exports: { default: async },
        with: { "kast:connector/types@0.1.0": crate::bindings::types },
    });
}

pub mod destination {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "destination",
        // Calls run as futures, so a deadline can end one that waits.
        exports: { default: async },
        with: { "kast:connector/types@0.1.0": crate::bindings::types },
    });
}
