//! The fenced blocks of a Markdown file, for tests that run the docs as a
//! reader would (`tutorial.rs`, `readme.rs`).

/// A fenced block: its info string (`sh`, `rust file=src/lib.rs`) and text.
pub struct Block {
    /// The info string after the opening fence.
    pub info: String,
    /// The block's lines, without the fences.
    pub text: String,
}

/// Every fenced block of `markdown`, in order.
pub fn blocks(markdown: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    for line in markdown.lines() {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(info)) => {
                open = Some(Block {
                    info: info.trim().to_string(),
                    text: String::new(),
                })
            }
            (Some(_), Some(_)) => out.extend(open.take()),
            (Some(block), None) => {
                block.text.push_str(line);
                block.text.push('\n');
            }
            (None, None) => {}
        }
    }
    out
}
