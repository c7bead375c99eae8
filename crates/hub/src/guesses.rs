//! Counts of wrong guesses per network address in a sliding minute: what `/enroll` uses
//! so user codes cannot be guessed (RFC 8628 §5.1). In memory, per hub instance; it never
//! holds more than 100,000 addresses (older windows are dropped first).

/// Wrong user codes typed at `/enroll`, per network address, so codes cannot be guessed
/// (RFC 8628 §5.1): past [`WRONG_CODES_PER_MINUTE`] in a minute, the address waits.
#[derive(Default)]
pub struct Guesses(std::sync::Mutex<std::collections::HashMap<String, (u32, std::time::Instant)>>);

/// Wrong codes one address may type in a minute (20^8 codes: a guesser gets nowhere).
pub const WRONG_CODES_PER_MINUTE: u32 = 30;

impl Guesses {
    fn window(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, (u32, std::time::Instant)>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `source` may try a code now.
    pub fn allowed(&self, source: &str) -> bool {
        let mut map = self.window();
        let minute = std::time::Duration::from_secs(60);
        match map.get(source) {
            Some((n, since)) if since.elapsed() < minute => *n < WRONG_CODES_PER_MINUTE,
            Some(_) => {
                map.remove(source);
                true
            }
            None => true,
        }
    }

    /// Counts a wrong code from `source`.
    pub fn wrong(&self, source: &str) {
        let mut map = self.window();
        if map.len() > 100_000 {
            map.retain(|_, (_, since)| since.elapsed() < std::time::Duration::from_secs(60));
        }
        let entry = map.entry(source.to_string()).or_insert((0, std::time::Instant::now()));
        entry.0 += 1;
    }
}
