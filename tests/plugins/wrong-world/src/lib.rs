//! A component that exports `example:other`'s `run` instead of any kanban policy world, so the host's tests
//! can check that installing it is refused with a clear message.

wit_bindgen::generate!({ path: "wit", world: "other" });

struct Other;

impl Guest for Other {
    fn run() -> u32 {
        42
    }
}

export!(Other);
