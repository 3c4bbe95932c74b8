//! `docs/wit-reference.md`, generated from the doc comments of the WIT package, and kept from drifting.
//!
//! The reference is rendered from the SDK's copy `wit/policy.wit` (a unit test holds it equal to the
//! repository's `wit/policy.wit`) with wit-parser, and compared with `../../docs/wit-reference.md` when that
//! file exists (a packaged crate has none, and then there is nothing to compare). To rewrite the file:
//!
//! ```sh
//! KANBAN_UPDATE_DOCS=1 cargo test --manifest-path plugins/Cargo.toml -p kanban-policy --test wit_reference
//! ```
//!
//! Every interface, world, type, record field, variant or enum case, flag and function must carry a doc
//! comment: the reference is the documentation of the interface, and a blank row in it helps nobody.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use wit_parser::{
    Docs, Function, Interface, InterfaceId, PackageId, Resolve, Type, TypeDefKind, TypeId, TypeOwner, World,
    WorldItem, WorldKey,
};

const UPDATE: &str = "KANBAN_UPDATE_DOCS=1 cargo test --manifest-path plugins/Cargo.toml -p kanban-policy --test wit_reference";

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn load() -> (Resolve, PackageId) {
    let mut resolve = Resolve::default();
    let package = resolve.push_file(manifest_dir().join("wit/policy.wit")).expect("parse wit/policy.wit");
    (resolve, package)
}

/// `docs/wit-reference.md` of the repository this crate sits in (which a packaged crate does not).
fn reference_path() -> PathBuf {
    manifest_dir().join("../../docs/wit-reference.md")
}

#[test]
fn every_item_has_a_doc_comment() {
    let (resolve, package) = load();
    let missing = undocumented(&resolve, package);
    assert!(
        missing.is_empty(),
        "wit/policy.wit: these have no doc comment (`/// ...` on the line before them):\n  {}\n\
         Add them to wit/policy.wit, copy it to plugins/kanban-policy/wit/policy.wit, then run\n  {UPDATE}",
        missing.join("\n  ")
    );
}

#[test]
fn the_reference_matches_the_wit() {
    let (resolve, package) = load();
    let rendered = render(&resolve, package);
    let path = reference_path();
    if std::env::var_os("KANBAN_UPDATE_DOCS").is_some_and(|v| v == "1") {
        // Only in the repository: beside its wit/policy.wit, which the SDK's copy must equal.
        let repository = manifest_dir().join("../../wit/policy.wit");
        assert!(
            repository.exists(),
            "KANBAN_UPDATE_DOCS=1: not in the kanban repository ({})",
            repository.display()
        );
        std::fs::write(&path, &rendered).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        return;
    }
    if !path.exists() {
        return; // a packaged crate: no reference to compare with
    }
    let current = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    if current != rendered {
        let first = current
            .lines()
            .zip(rendered.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| current.lines().count().min(rendered.lines().count()));
        panic!(
            "docs/wit-reference.md is not what wit/policy.wit generates (first difference at line {}). \
             Do not edit it by hand: regenerate it with\n  {UPDATE}",
            first + 1
        );
    }
}

/// Everything that should carry a doc comment and does not, as `interface types: record card, field id`.
fn undocumented(resolve: &Resolve, package: PackageId) -> Vec<String> {
    let mut missing = Vec::new();
    let mut check = |docs: &Docs, what: String| {
        if docs.contents.as_deref().is_none_or(|d| d.trim().is_empty()) {
            missing.push(what);
        }
    };
    let pkg = &resolve.packages[package];
    check(&pkg.docs, format!("package {}", pkg.name));
    for item in items(resolve, package) {
        match item {
            Top::Interface(id) => {
                let iface = &resolve.interfaces[id];
                let name = iface.name.as_deref().unwrap_or("?");
                check(&iface.docs, format!("interface {name}"));
                for member in members(resolve, iface) {
                    match member {
                        Member::Type(t) => {
                            let def = &resolve.types[t];
                            let ty = def.name.as_deref().unwrap_or("?");
                            let what = format!("interface {name}: {} {ty}", kind_name(&def.kind));
                            check(&def.docs, what.clone());
                            match &def.kind {
                                TypeDefKind::Record(r) => {
                                    for f in &r.fields {
                                        check(&f.docs, format!("{what}, field {}", f.name));
                                    }
                                }
                                TypeDefKind::Variant(v) => {
                                    for c in &v.cases {
                                        check(&c.docs, format!("{what}, case {}", c.name));
                                    }
                                }
                                TypeDefKind::Enum(e) => {
                                    for c in &e.cases {
                                        check(&c.docs, format!("{what}, case {}", c.name));
                                    }
                                }
                                TypeDefKind::Flags(f) => {
                                    for flag in &f.flags {
                                        check(&flag.docs, format!("{what}, flag {}", flag.name));
                                    }
                                }
                                _ => {}
                            }
                        }
                        Member::Function(f) => check(&f.docs, format!("interface {name}: func {}", f.name)),
                    }
                }
            }
            Top::World(id) => {
                let world = &resolve.worlds[id];
                check(&world.docs, format!("world {}", world.name));
            }
        }
    }
    missing
}

/// A top-level item of the package.
#[derive(Clone, Copy)]
enum Top {
    Interface(InterfaceId),
    World(wit_parser::WorldId),
}

/// The package's interfaces and worlds, in file order.
fn items(resolve: &Resolve, package: PackageId) -> Vec<Top> {
    let pkg = &resolve.packages[package];
    let mut items: Vec<(u32, Top)> = pkg
        .interfaces
        .values()
        .map(|&id| (resolve.interfaces[id].span.start(), Top::Interface(id)))
        .chain(pkg.worlds.values().map(|&id| (resolve.worlds[id].span.start(), Top::World(id))))
        .collect();
    items.sort_by_key(|(start, _)| *start);
    items.into_iter().map(|(_, item)| item).collect()
}

/// A member an interface defines itself (not one it `use`s).
enum Member<'a> {
    Type(TypeId),
    Function(&'a Function),
}

/// Whether a type of an interface is a `use` of another interface's type.
fn is_use(resolve: &Resolve, id: TypeId) -> bool {
    let def = &resolve.types[id];
    match def.kind {
        TypeDefKind::Type(Type::Id(target)) => resolve.types[target].owner != def.owner,
        _ => false,
    }
}

/// The types and functions an interface defines, in file order.
fn members<'a>(resolve: &Resolve, iface: &'a Interface) -> Vec<Member<'a>> {
    let mut members: Vec<(u32, Member<'a>)> = iface
        .types
        .values()
        .filter(|&&t| !is_use(resolve, t))
        .map(|&t| (resolve.types[t].span.start(), Member::Type(t)))
        .chain(iface.functions.values().map(|f| (f.span.start(), Member::Function(f))))
        .collect();
    members.sort_by_key(|(start, _)| *start);
    members.into_iter().map(|(_, member)| member).collect()
}

/// The types an interface `use`s, in file order.
fn uses(resolve: &Resolve, iface: &Interface) -> Vec<TypeId> {
    let mut used: Vec<TypeId> = iface.types.values().copied().filter(|&t| is_use(resolve, t)).collect();
    used.sort_by_key(|&t| resolve.types[t].span.start());
    used
}

fn kind_name(kind: &TypeDefKind) -> &'static str {
    match kind {
        TypeDefKind::Type(_) => "type",
        other => other.as_str(),
    }
}

/// The anchor of an interface, world or named type: `types`, `world-routing-policy`, `types-card`.
struct Anchors<'a> {
    resolve: &'a Resolve,
}

impl Anchors<'_> {
    fn interface(&self, id: InterfaceId) -> String {
        self.resolve.interfaces[id].name.clone().unwrap_or_else(|| format!("interface-{}", id.index()))
    }

    fn world(&self, world: &World) -> String {
        format!("world-{}", world.name)
    }

    /// The definition a type reference leads to: a `use` leads to the type it uses.
    fn origin(&self, mut id: TypeId) -> TypeId {
        while is_use(self.resolve, id) {
            let TypeDefKind::Type(Type::Id(target)) = self.resolve.types[id].kind else { unreachable!() };
            id = target;
        }
        id
    }

    fn ty(&self, id: TypeId) -> String {
        let def = &self.resolve.types[id];
        let owner = match def.owner {
            TypeOwner::Interface(i) => self.interface(i),
            TypeOwner::World(w) => self.world(&self.resolve.worlds[w]),
            TypeOwner::None => "anonymous".into(),
        };
        format!("{owner}-{}", def.name.as_deref().unwrap_or("?"))
    }

    fn function(&self, iface: InterfaceId, f: &Function) -> String {
        format!("{}-{}", self.interface(iface), f.name)
    }
}

/// A WIT type as Markdown: code spans, with every named type a link to its definition, e.g.
/// `` `option<`[`deferral`](#respawn-guard-deferral)`>` ``.
fn type_md(anchors: &Anchors, ty: &Type) -> String {
    let mut pieces = Vec::new();
    type_pieces(anchors, ty, &mut pieces);
    // Merge neighbouring plain pieces, then render plain text as code and links as linked code.
    let mut out = String::new();
    let mut plain = String::new();
    for piece in pieces {
        match piece {
            Piece::Text(t) => plain.push_str(&t),
            Piece::Link(name, anchor) => {
                if !plain.is_empty() {
                    write!(out, "`{plain}`").unwrap();
                    plain.clear();
                }
                write!(out, "[`{name}`](#{anchor})").unwrap();
            }
        }
    }
    if !plain.is_empty() {
        write!(out, "`{plain}`").unwrap();
    }
    out
}

enum Piece {
    Text(String),
    Link(String, String),
}

fn type_pieces(anchors: &Anchors, ty: &Type, out: &mut Vec<Piece>) {
    let text = |s: &str| Piece::Text(s.to_string());
    let id = match ty {
        Type::Bool => return out.push(text("bool")),
        Type::U8 => return out.push(text("u8")),
        Type::U16 => return out.push(text("u16")),
        Type::U32 => return out.push(text("u32")),
        Type::U64 => return out.push(text("u64")),
        Type::S8 => return out.push(text("s8")),
        Type::S16 => return out.push(text("s16")),
        Type::S32 => return out.push(text("s32")),
        Type::S64 => return out.push(text("s64")),
        Type::F32 => return out.push(text("f32")),
        Type::F64 => return out.push(text("f64")),
        Type::Char => return out.push(text("char")),
        Type::String => return out.push(text("string")),
        Type::ErrorContext => return out.push(text("error-context")),
        Type::Id(id) => *id,
    };
    let def = &anchors.resolve.types[id];
    if let Some(name) = &def.name {
        return out.push(Piece::Link(name.clone(), anchors.ty(anchors.origin(id))));
    }
    let generic = |name: &str, args: &[Option<&Type>], out: &mut Vec<Piece>| {
        out.push(Piece::Text(format!("{name}<")));
        for (i, arg) in args.iter().enumerate() {
            if i > 0 {
                out.push(text(", "));
            }
            match arg {
                Some(t) => type_pieces(anchors, t, out),
                None => out.push(text("_")),
            }
        }
        out.push(text(">"));
    };
    match &def.kind {
        TypeDefKind::Option(t) => generic("option", &[Some(t)], out),
        TypeDefKind::List(t) => generic("list", &[Some(t)], out),
        TypeDefKind::Result(r) => match (&r.ok, &r.err) {
            (None, None) => out.push(text("result")),
            (Some(ok), None) => generic("result", &[Some(ok)], out),
            (ok, Some(err)) => generic("result", &[ok.as_ref(), Some(err)], out),
        },
        TypeDefKind::Tuple(t) => {
            let args: Vec<Option<&Type>> = t.types.iter().map(Some).collect();
            generic("tuple", &args, out)
        }
        TypeDefKind::Map(k, v) => generic("map", &[Some(k), Some(v)], out),
        TypeDefKind::FixedLengthList(t, n) => {
            generic("list", &[Some(t)], out);
            out.pop();
            out.push(Piece::Text(format!(", {n}>")));
        }
        TypeDefKind::Future(t) => match t {
            Some(t) => generic("future", &[Some(t)], out),
            None => out.push(text("future")),
        },
        TypeDefKind::Stream(t) => match t {
            Some(t) => generic("stream", &[Some(t)], out),
            None => out.push(text("stream")),
        },
        TypeDefKind::Handle(wit_parser::Handle::Own(t)) => type_pieces(anchors, &Type::Id(*t), out),
        TypeDefKind::Handle(wit_parser::Handle::Borrow(t)) => {
            out.push(text("borrow<"));
            type_pieces(anchors, &Type::Id(*t), out);
            out.push(text(">"));
        }
        TypeDefKind::Type(t) => type_pieces(anchors, t, out),
        other => out.push(Piece::Text(other.as_str().to_string())),
    }
}

/// A doc comment as a block of Markdown (its paragraphs as written).
fn block(docs: &Docs) -> String {
    docs.contents.as_deref().map(str::trim).unwrap_or("").to_string()
}

/// A doc comment inside a table cell: one line, paragraphs kept apart with `<br><br>`.
fn cell(docs: &Docs) -> String {
    let text = docs.contents.as_deref().map(str::trim).unwrap_or("");
    text.split("\n\n")
        .map(|para| para.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("<br><br>")
        .replace('|', "\\|")
}

/// The whole reference.
fn render(resolve: &Resolve, package: PackageId) -> String {
    let anchors = Anchors { resolve };
    let pkg = &resolve.packages[package];
    let items = items(resolve, package);
    let mut seen = BTreeSet::new();
    let mut anchor = |id: String| -> String {
        assert!(seen.insert(id.clone()), "two items of the WIT package would share the anchor #{id}");
        format!("<a id=\"{id}\"></a>")
    };
    let mut md = String::new();
    let w = &mut md;
    writeln!(w, "# WIT reference: `{}`\n", pkg.name).unwrap();
    writeln!(
        w,
        "<!-- Generated from wit/policy.wit by plugins/kanban-policy/tests/wit_reference.rs: do not edit. -->\n\
         > Generated from the doc comments of [`wit/policy.wit`](../wit/policy.wit); do not edit it by hand. Change \
         the doc comments there (and copy the file to `plugins/kanban-policy/wit/policy.wit`), then regenerate:\n\
         >\n\
         > ```sh\n\
         > {UPDATE}\n\
         > ```\n\
         >\n\
         > The same test fails when this file is out of date, or when an item of the WIT has no doc comment. How \
         to write a plugin against this interface, in Rust, Python or JavaScript: [plugins.md](plugins.md#writing-one).\n"
    )
    .unwrap();
    writeln!(w, "{}\n", block(&pkg.docs)).unwrap();

    // Contents.
    writeln!(w, "## Contents\n").unwrap();
    for item in &items {
        match *item {
            Top::Interface(id) => {
                let iface = &resolve.interfaces[id];
                let types: Vec<String> = members(resolve, iface)
                    .iter()
                    .map(|m| match m {
                        Member::Type(t) => {
                            let name = resolve.types[*t].name.as_deref().unwrap_or("?");
                            format!("[`{name}`](#{})", anchors.ty(*t))
                        }
                        Member::Function(f) => format!("[`{}`](#{})", f.name, anchors.function(id, f)),
                    })
                    .collect();
                writeln!(
                    w,
                    "- interface [`{}`](#{}): {}",
                    iface.name.as_deref().unwrap_or("?"),
                    anchors.interface(id),
                    types.join(", ")
                )
                .unwrap();
            }
            Top::World(id) => {
                let world = &resolve.worlds[id];
                writeln!(w, "- world [`{}`](#{})", world.name, anchors.world(world)).unwrap();
            }
        }
    }
    writeln!(w).unwrap();

    for item in &items {
        match *item {
            Top::Interface(id) => render_interface(w, resolve, &anchors, &mut anchor, id),
            Top::World(id) => {
                let world = &resolve.worlds[id];
                writeln!(w, "{}\n## world `{}`\n", anchor(anchors.world(world)), world.name).unwrap();
                writeln!(w, "{}\n", block(&world.docs)).unwrap();
                for (label, list) in [("imports", &world.imports), ("exports", &world.exports)] {
                    let entries: Vec<String> = list
                        .iter()
                        .map(|(key, item)| match (key, item) {
                            (_, WorldItem::Interface { id, .. }) => {
                                let name = resolve.interfaces[*id].name.as_deref().unwrap_or("?");
                                format!("[`{name}`](#{})", anchors.interface(*id))
                            }
                            (WorldKey::Name(name), _) => format!("`{name}`"),
                            (WorldKey::Interface(i), _) => format!("`interface-{}`", i.index()),
                        })
                        .collect();
                    if !entries.is_empty() {
                        let label = if label == "imports" { "Imports" } else { "Exports" };
                        writeln!(w, "{label}: {}.\n", entries.join(", ")).unwrap();
                    }
                }
            }
        }
    }
    while md.ends_with("\n\n") {
        md.pop();
    }
    md
}

fn render_interface(
    w: &mut String,
    resolve: &Resolve,
    anchors: &Anchors,
    anchor: &mut impl FnMut(String) -> String,
    id: InterfaceId,
) {
    let iface = &resolve.interfaces[id];
    let name = iface.name.as_deref().unwrap_or("?");
    writeln!(w, "{}\n## interface `{name}`\n", anchor(anchors.interface(id))).unwrap();
    writeln!(w, "{}\n", block(&iface.docs)).unwrap();
    let used = uses(resolve, iface);
    if !used.is_empty() {
        let links: Vec<String> = used.iter().map(|&t| type_md(anchors, &Type::Id(t))).collect();
        writeln!(w, "Uses {}.\n", links.join(", ")).unwrap();
    }
    for member in members(resolve, iface) {
        match member {
            Member::Type(t) => {
                let def = &resolve.types[t];
                let ty = def.name.as_deref().unwrap_or("?");
                writeln!(w, "{}\n### {} `{ty}`\n", anchor(anchors.ty(t)), kind_name(&def.kind)).unwrap();
                writeln!(w, "{}\n", block(&def.docs)).unwrap();
                match &def.kind {
                    TypeDefKind::Record(r) => {
                        writeln!(w, "| field | type | meaning |\n|---|---|---|").unwrap();
                        for f in &r.fields {
                            writeln!(w, "| `{}` | {} | {} |", f.name, type_md(anchors, &f.ty), cell(&f.docs))
                                .unwrap();
                        }
                        writeln!(w).unwrap();
                    }
                    TypeDefKind::Variant(v) => {
                        writeln!(w, "| case | payload | meaning |\n|---|---|---|").unwrap();
                        for c in &v.cases {
                            let payload = c.ty.as_ref().map(|t| type_md(anchors, t)).unwrap_or_default();
                            writeln!(w, "| `{}` | {payload} | {} |", c.name, cell(&c.docs)).unwrap();
                        }
                        writeln!(w).unwrap();
                    }
                    TypeDefKind::Enum(e) => {
                        writeln!(w, "| case | meaning |\n|---|---|").unwrap();
                        for c in &e.cases {
                            writeln!(w, "| `{}` | {} |", c.name, cell(&c.docs)).unwrap();
                        }
                        writeln!(w).unwrap();
                    }
                    TypeDefKind::Flags(f) => {
                        writeln!(w, "| flag | meaning |\n|---|---|").unwrap();
                        for flag in &f.flags {
                            writeln!(w, "| `{}` | {} |", flag.name, cell(&flag.docs)).unwrap();
                        }
                        writeln!(w).unwrap();
                    }
                    TypeDefKind::Type(target) => {
                        writeln!(w, "An alias: `{ty}` = {}.\n", type_md(anchors, target)).unwrap();
                    }
                    TypeDefKind::Resource => {}
                    _ => {
                        let shape = type_md(anchors, &Type::Id(t));
                        writeln!(w, "Defined as {shape}.\n").unwrap();
                    }
                }
            }
            Member::Function(f) => render_function(w, anchors, anchor, id, f),
        }
    }
}

fn render_function(
    w: &mut String,
    anchors: &Anchors,
    anchor: &mut impl FnMut(String) -> String,
    iface: InterfaceId,
    f: &Function,
) {
    writeln!(w, "{}\n### func `{}`\n", anchor(anchors.function(iface, f)), f.name).unwrap();
    let params: Vec<String> =
        f.params.iter().map(|p| format!("{}: {}", p.name, wit_type(anchors, &p.ty))).collect();
    let result = f.result.as_ref().map(|t| format!(" -> {}", wit_type(anchors, t))).unwrap_or_default();
    writeln!(w, "```wit\n{}: func({}){result};\n```\n", f.name, params.join(", ")).unwrap();
    writeln!(w, "{}\n", block(&f.docs)).unwrap();
    if !f.params.is_empty() {
        writeln!(w, "| parameter | type |\n|---|---|").unwrap();
        for p in &f.params {
            writeln!(w, "| `{}` | {} |", p.name, type_md(anchors, &p.ty)).unwrap();
        }
        writeln!(w).unwrap();
    }
    match &f.result {
        Some(t) => writeln!(w, "Returns {}.\n", type_md(anchors, t)).unwrap(),
        None => writeln!(w, "Returns nothing.\n").unwrap(),
    }
}

/// A type as WIT source text (for the signature line).
fn wit_type(anchors: &Anchors, ty: &Type) -> String {
    let mut pieces = Vec::new();
    type_pieces(anchors, ty, &mut pieces);
    pieces
        .into_iter()
        .map(|p| match p {
            Piece::Text(t) => t,
            Piece::Link(name, _) => name,
        })
        .collect()
}
