//! The raw bindings of `kanban:policy@0.1.0`, generated once from `wit/policy.wit`.
//!
//! Every world of the package exports `plugin` plus one kind interface. wit-bindgen generates the export
//! glue of an exported interface in every world that exports it, as a `#[macro_export]` macro named after
//! the interface, so generating the package's four worlds in one crate would define the `plugin` glue four
//! times. Instead this module generates five worlds of an SDK-internal package that split each of the
//! package's worlds in two: `plugin` (exports `plugin`) and one world per kind (exports that kind's
//! interface). An export macro emits both halves, and the component linker (wit-component) unions the two
//! worlds it finds in the module, so the component exports exactly what the package's world does:
//! `kanban:policy/plugin@0.1.0` and the kind's interface. The `plugin` world generates the shared `types`
//! interface; the kind worlds use it (`with`), so a `Context` is one type whatever the kind.
//!
//! Plugin authors normally use the kind modules ([`crate::guard`], [`crate::routing`], ...) and their export
//! macros instead.

/// `plugin` (describe, validate-config), and the `types` every interface uses.
pub mod plugin {
    wit_bindgen::generate!({
        path: "wit",
        inline: r#"package kanban:policy-sdk;
world plugin { export kanban:policy/plugin@0.1.0; }
world respawn-guard { export kanban:policy/respawn-guard@0.1.0; }
world diagnostics { export kanban:policy/diagnostics@0.1.0; }
world routing { export kanban:policy/routing@0.1.0; }
world decompose { export kanban:policy/decompose@0.1.0; }
"#,
        world: "kanban:policy-sdk/plugin",
        pub_export_macro: true,
        export_macro_name: "export",
        default_bindings_module: "kanban_policy::bindings::plugin",
        runtime_path: "kanban_policy::__private::wit_bindgen::rt",
        additional_derives: [PartialEq, Eq],
        with: { "kanban:policy/types@0.1.0": generate },
    });
}

/// The `respawn-guard` interface.
pub mod respawn_guard {
    wit_bindgen::generate!({
        path: "wit",
        inline: r#"package kanban:policy-sdk;
world plugin { export kanban:policy/plugin@0.1.0; }
world respawn-guard { export kanban:policy/respawn-guard@0.1.0; }
world diagnostics { export kanban:policy/diagnostics@0.1.0; }
world routing { export kanban:policy/routing@0.1.0; }
world decompose { export kanban:policy/decompose@0.1.0; }
"#,
        world: "kanban:policy-sdk/respawn-guard",
        pub_export_macro: true,
        export_macro_name: "export",
        default_bindings_module: "kanban_policy::bindings::respawn_guard",
        runtime_path: "kanban_policy::__private::wit_bindgen::rt",
        additional_derives: [PartialEq, Eq],
        with: { "kanban:policy/types@0.1.0": crate::bindings::plugin::kanban::policy::types },
    });
}

/// The `diagnostics` interface.
pub mod diagnostics {
    wit_bindgen::generate!({
        path: "wit",
        inline: r#"package kanban:policy-sdk;
world plugin { export kanban:policy/plugin@0.1.0; }
world respawn-guard { export kanban:policy/respawn-guard@0.1.0; }
world diagnostics { export kanban:policy/diagnostics@0.1.0; }
world routing { export kanban:policy/routing@0.1.0; }
world decompose { export kanban:policy/decompose@0.1.0; }
"#,
        world: "kanban:policy-sdk/diagnostics",
        pub_export_macro: true,
        export_macro_name: "export",
        default_bindings_module: "kanban_policy::bindings::diagnostics",
        runtime_path: "kanban_policy::__private::wit_bindgen::rt",
        additional_derives: [PartialEq, Eq],
        with: { "kanban:policy/types@0.1.0": crate::bindings::plugin::kanban::policy::types },
    });
}

/// The `routing` interface.
pub mod routing {
    wit_bindgen::generate!({
        path: "wit",
        inline: r#"package kanban:policy-sdk;
world plugin { export kanban:policy/plugin@0.1.0; }
world respawn-guard { export kanban:policy/respawn-guard@0.1.0; }
world diagnostics { export kanban:policy/diagnostics@0.1.0; }
world routing { export kanban:policy/routing@0.1.0; }
world decompose { export kanban:policy/decompose@0.1.0; }
"#,
        world: "kanban:policy-sdk/routing",
        pub_export_macro: true,
        export_macro_name: "export",
        default_bindings_module: "kanban_policy::bindings::routing",
        runtime_path: "kanban_policy::__private::wit_bindgen::rt",
        additional_derives: [PartialEq, Eq],
        with: { "kanban:policy/types@0.1.0": crate::bindings::plugin::kanban::policy::types },
    });
}

/// The `decompose` interface.
pub mod decompose {
    wit_bindgen::generate!({
        path: "wit",
        inline: r#"package kanban:policy-sdk;
world plugin { export kanban:policy/plugin@0.1.0; }
world respawn-guard { export kanban:policy/respawn-guard@0.1.0; }
world diagnostics { export kanban:policy/diagnostics@0.1.0; }
world routing { export kanban:policy/routing@0.1.0; }
world decompose { export kanban:policy/decompose@0.1.0; }
"#,
        world: "kanban:policy-sdk/decompose",
        pub_export_macro: true,
        export_macro_name: "export",
        default_bindings_module: "kanban_policy::bindings::decompose",
        runtime_path: "kanban_policy::__private::wit_bindgen::rt",
        additional_derives: [PartialEq, Eq],
        with: { "kanban:policy/types@0.1.0": crate::bindings::plugin::kanban::policy::types },
    });
}
