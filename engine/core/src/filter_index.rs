//! A topic-filter index: many filters, each with values, looked up by topic name.
//!
//! Built once and then only read (the rule engine rebuilds it when rules change and swaps
//! it in whole), so lookups take no lock. A lookup walks the topic's levels down a trie,
//! following the literal level, `+` and `#` at each step: its cost depends on the topic's
//! depth and on how many filters match it, never on how many filters the index holds.

use std::collections::HashMap;

use crate::{Topic, TopicFilter};

/// Values keyed by MQTT topic filter, found by the topics those filters match.
#[derive(Debug)]
pub struct FilterIndex<T> {
    root: Node<T>,
    len: usize,
}

#[derive(Debug)]
struct Node<T> {
    literal: HashMap<Box<str>, Node<T>>,
    plus: Option<Box<Node<T>>>,
    /// Values of filters ending in `#` here (they match this level and everything below).
    hash: Vec<T>,
    /// Values of filters ending exactly here.
    exact: Vec<T>,
}

impl<T> Default for Node<T> {
    fn default() -> Self {
        Self {
            literal: HashMap::new(),
            plus: None,
            hash: Vec::new(),
            exact: Vec::new(),
        }
    }
}

impl<T> Default for FilterIndex<T> {
    fn default() -> Self {
        Self {
            root: Node::default(),
            len: 0,
        }
    }
}

impl<T> FilterIndex<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many values the index holds.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds `value` under `filter` (a filter may hold many values).
    pub fn insert(&mut self, filter: &TopicFilter, value: T) {
        let mut node = &mut self.root;
        for level in filter.levels() {
            node = match level {
                "#" => {
                    node.hash.push(value);
                    self.len += 1;
                    return;
                }
                "+" => node.plus.get_or_insert_with(Box::default),
                literal => node.literal.entry(literal.into()).or_default(),
            };
        }
        node.exact.push(value);
        self.len += 1;
    }

    /// Calls `found` with every value whose filter matches `topic`, with MQTT's rule that
    /// a filter starting with a wildcard matches no `$` topic.
    pub fn for_each_match<'a>(&'a self, topic: &Topic, mut found: impl FnMut(&'a T)) {
        let levels: Vec<&str> = topic.levels().collect();
        Self::walk(&self.root, &levels, topic.is_system(), &mut found);
    }

    /// Whether any filter matches `topic`.
    pub fn matches_any(&self, topic: &Topic) -> bool {
        let mut any = false;
        self.for_each_match(topic, |_| any = true);
        any
    }

    fn walk<'a>(
        node: &'a Node<T>,
        rest: &[&str],
        first_is_system: bool,
        found: &mut impl FnMut(&'a T),
    ) {
        // `#` also matches the parent level itself (`a/#` matches `a`).
        if !first_is_system {
            node.hash.iter().for_each(&mut *found);
        }
        let Some((level, rest)) = rest.split_first() else {
            node.exact.iter().for_each(found);
            return;
        };
        if let Some(child) = node.literal.get(*level) {
            Self::walk(child, rest, false, found);
        }
        if !first_is_system && let Some(child) = &node.plus {
            Self::walk(child, rest, false, found);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(filters: &[&str]) -> FilterIndex<usize> {
        let mut index = FilterIndex::new();
        for (i, f) in filters.iter().enumerate() {
            index.insert(&TopicFilter::parse(f).expect("filter"), i);
        }
        index
    }

    fn found(index: &FilterIndex<usize>, topic: &str) -> Vec<usize> {
        let mut out = Vec::new();
        index.for_each_match(&Topic::parse(topic).expect("topic"), |v| out.push(*v));
        out.sort_unstable();
        out
    }

    #[test]
    fn agrees_with_topic_filter_matches() {
        let filters = [
            "#",
            "+",
            "a",
            "a/#",
            "a/+",
            "a/b",
            "a/+/c",
            "+/b/#",
            "a/b/c",
            "$SYS/#",
            "$SYS/+",
            "+/+",
            "a/b/c/#",
            "/",
            "/+",
            "+/",
            "$thing/up/+",
        ];
        let topics = [
            "a",
            "a/b",
            "a/b/c",
            "a/x/c",
            "b",
            "x/b/y/z",
            "$SYS/load",
            "$SYS",
            "/",
            "/a",
            "a/",
            "$thing/up/PID",
            "a/b/c/d",
        ];
        let idx = index(&filters);
        assert_eq!(idx.len(), filters.len());
        for topic in topics {
            let t = Topic::parse(topic).expect("topic");
            let expected: Vec<usize> = filters
                .iter()
                .enumerate()
                .filter(|(_, f)| TopicFilter::parse(f).expect("filter").matches(&t))
                .map(|(i, _)| i)
                .collect();
            assert_eq!(found(&idx, topic), expected, "topic {topic}");
        }
    }

    #[test]
    fn one_filter_holds_many_values_and_empty_index_matches_nothing() {
        let mut idx = index(&["p/+/data", "p/+/data"]);
        idx.insert(&TopicFilter::parse("p/+/data").expect("filter"), 7);
        assert_eq!(found(&idx, "p/d1/data"), [0, 1, 7]);
        assert!(!idx.matches_any(&Topic::parse("p/d1/other").expect("topic")));
        assert!(!FilterIndex::<u8>::new().matches_any(&Topic::parse("a").expect("topic")));
    }
}
