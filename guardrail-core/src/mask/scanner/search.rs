//! The search: windows around triggers, bounded spans per automaton, candidates checked.

use super::*;

impl Inner {
    /// Searches `span` of `text`, appending validated matches: at each step the leftmost
    /// validated candidate of either stream (the earlier pattern at the same start), then
    /// on after its end. `open` is false when the open-ended patterns cannot match here;
    /// `skip` lets a short rest of the span that cannot hold a built-in identifier go
    /// unsearched ([`trigger::cannot_match`]).
    pub(super) fn search(
        &self,
        text: &str,
        span: Range<usize>,
        open: bool,
        skip: bool,
        out: &mut Vec<ScanMatch>,
        work: &mut ScanWork,
    ) {
        let end = span.end;
        let mut at = span.start;
        let open_stream = if open { self.open.as_ref() } else { None };
        let mut next = [Lane::new(self.bounded.as_ref()), Lane::new(open_stream)];
        while at < end {
            if skip
                && next.iter().all(|l| l.candidate.is_none())
                && text
                    .as_bytes()
                    .get(at..end)
                    .is_some_and(super::trigger::cannot_match)
            {
                break;
            }
            for lane in &mut next {
                lane.refill(self, text, at, end, work);
            }
            let [b, o] = &mut next;
            let lane = match (&b.candidate, &o.candidate) {
                (Some(x), Some(y)) if (y.start, y.index) < (x.start, x.index) => o,
                (Some(_), _) => b,
                (None, Some(_)) => o,
                (None, None) => break,
            };
            let Some(c) = lane.candidate.take() else {
                break;
            };
            at = c.end.max(c.start + 1);
            out.push(c.found);
        }
    }

    pub(super) fn accept(
        &self,
        pattern: &Pattern,
        text: &str,
        range: Range<usize>,
    ) -> Option<ScanMatch> {
        let whole = text.get(range.clone())?;
        // The identifier part, without its cue.
        let mut id = range.clone();
        match &pattern.id {
            IdPart::Whole => {}
            IdPart::FromFirstNumeric => {
                let skip = whole
                    .bytes()
                    .position(|b| b.is_ascii_digit() || b == b'(' || b == b'+')
                    .unwrap_or(0);
                id.start += skip;
            }
            IdPart::Group(alone) => {
                if let Some(g) = alone.captures(whole).and_then(|c| c.name("id")) {
                    id = range.start + g.start()..range.start + g.end();
                }
            }
        }
        let s = text.get(id.clone())?;
        let ok = match pattern.check {
            Check::None => true,
            Check::Ssn => valid_ssn(s),
            Check::Nanp => valid_nanp(s),
            Check::NumericDate => valid_numeric_date(s),
            Check::NamedDate => valid_named_date(s),
            Check::Ipv4 => s.parse::<std::net::Ipv4Addr>().is_ok(),
            Check::Ipv6 => s.parse::<std::net::Ipv6Addr>().is_ok(),
            Check::Luhn => valid_luhn(s),
            Check::Url => {
                // Prose puts punctuation after a URL; it is not part of it.
                let trimmed = s.trim_end_matches(['.', ',', ';', ':', '!', '?', ')', '\'', '"']);
                id.end = id.start + trimmed.len();
                !trimmed.is_empty()
            }
        };
        ok.then_some(ScanMatch {
            kind: pattern.kind,
            range: id,
        })
    }
}

/// One stream's next validated candidate at or after some position.
pub(super) struct Lane<'s> {
    stream: Option<&'s Stream>,
    candidate: Option<Candidate>,
    /// The stream has no validated candidate at or after this position.
    exhausted_from: Option<usize>,
}

impl<'s> Lane<'s> {
    fn new(stream: Option<&'s Stream>) -> Lane<'s> {
        Lane {
            stream,
            candidate: None,
            exhausted_from: None,
        }
    }

    /// Makes `candidate` the stream's first validated candidate starting at or after `at`
    /// (kept if it already is: which match starts where does not depend on where a search
    /// began, so an earlier search's answer stands).
    fn refill(&mut self, inner: &Inner, text: &str, at: usize, end: usize, work: &mut ScanWork) {
        let Some(stream) = self.stream else {
            return;
        };
        if self.candidate.as_ref().is_some_and(|c| c.start >= at)
            || self.exhausted_from.is_some_and(|from| from <= at)
        {
            return;
        }
        self.candidate = stream.next(inner, text, at, end, work);
        if self.candidate.is_none() {
            self.exhausted_from = Some(at);
        }
    }
}

impl Stream {
    /// The first validated candidate of this stream starting in `from..end`.
    ///
    /// Each search is given at most `span` bytes, so a rejected candidate (the search then
    /// resumes one byte after its start, since a valid identifier may hide inside) costs at
    /// most `span` bytes however long the window: linear time overall.
    fn next(
        &self,
        inner: &Inner,
        text: &str,
        from: usize,
        end: usize,
        work: &mut ScanWork,
    ) -> Option<Candidate> {
        let mut at = from;
        while at < end {
            let cut = end.min(at.saturating_add(self.span));
            work.searches += 1;
            work.bytes_searched += (cut - at) as u64;
            let Some(m) = self.regex.search(&Input::new(text).span(at..cut)) else {
                if cut == end {
                    return None;
                }
                // No match starts before `cut - margin` (one would have fit in the span).
                at = (cut - self.margin).max(at + 1);
                continue;
            };
            let start = m.start();
            if cut < end && start > at && cut - start < self.margin {
                // The cut may have shortened this match: search again from its start.
                at = start;
                continue;
            }
            let index = *self.ids.get(m.pattern().as_usize())?;
            let pattern = inner.patterns.get(index)?;
            let mut range = m.range();
            if cut < end && m.end() == cut && pattern.max_len.is_none_or(|l| l > m.len()) {
                // Longer than a whole span (a URL of kilobytes): mask on to whitespace.
                let rest = text.as_bytes().get(cut..end).unwrap_or_default();
                let extra = rest
                    .iter()
                    .position(|b| b.is_ascii_whitespace())
                    .unwrap_or(rest.len());
                work.bytes_searched += extra as u64;
                range.end = cut + extra;
            }
            work.validations += 1;
            match inner.accept(pattern, text, range.clone()) {
                Some(found) => {
                    return Some(Candidate {
                        found,
                        index,
                        start,
                        end: range.end,
                    });
                }
                None => at = next_char(text, start),
            }
        }
        None
    }
}

pub(super) fn next_char(text: &str, at: usize) -> usize {
    let mut i = at + 1;
    while i < text.len() && !text.is_char_boundary(i) {
        i += 1;
    }
    i
}
