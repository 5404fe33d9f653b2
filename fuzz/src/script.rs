//! The fuzzer's bytes read as a script of choices; past the end every
//! choice is 0, so every input is a whole script.
pub struct Script<'a> {
    rest: &'a [u8],
}

impl<'a> Script<'a> {
    pub fn new(data: &'a [u8]) -> Script<'a> {
        Script { rest: data }
    }

    pub fn is_done(&self) -> bool {
        self.rest.is_empty()
    }

    pub fn byte(&mut self) -> u8 {
        match self.rest.split_first() {
            Some((&byte, rest)) => {
                self.rest = rest;
                byte
            }
            None => 0,
        }
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }

    /// Up to `len` bytes, fewer at the end.
    pub fn bytes(&mut self, len: usize) -> &'a [u8] {
        let (taken, rest) = self.rest.split_at(len.min(self.rest.len()));
        self.rest = rest;
        taken
    }
}

impl crate::wire::Choices for Script<'_> {
    fn byte(&mut self) -> u8 {
        Script::byte(self)
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        Script::bytes(self, len).to_vec()
    }
}
