//! A queue's index of its free members, kept in the order its strategy picks them, so
//! that a routing decision reads the front of an ordered set (O(log n)) instead of
//! looking at every member.
//!
//! Owns only the ordered sets; which agents belong in them, and with what key, is decided
//! by the ACD (`Acd::refresh`), which removes exactly the entries it inserted. This module
//! must not look at agents or callers.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Arc;
use std::time::Instant;

/// Where a free member sorts within its penalty level: a strategy's rank (member place,
/// calls answered, talk time in ns, or 0), then the time it became idle (`None` where
/// idleness does not matter), then its id (ties are broken by name, so decisions are
/// deterministic).
pub(super) type Rank = (u128, Option<Instant>, Arc<str>);

/// Where a free member sorts in a skill's index within its penalty level: highest
/// proficiency first, then idle longest, then by name.
pub(super) type SkillRank = (Reverse<u8>, Instant, Arc<str>);

/// One queue's free members.
#[derive(Default)]
pub(super) struct FreeIndex {
    /// By penalty (lowest first), then rank.
    levels: BTreeMap<u32, BTreeSet<Rank>>,
    /// For the skills strategy: per skill, the free members who have it, by penalty.
    skills: HashMap<String, BTreeMap<u32, BTreeSet<SkillRank>>>,
}

impl FreeIndex {
    pub(super) fn is_empty(&self) -> bool {
        self.levels.is_empty()
    }

    pub(super) fn clear(&mut self) {
        self.levels.clear();
        self.skills.clear();
    }

    pub(super) fn insert(&mut self, penalty: u32, rank: Rank) {
        self.levels.entry(penalty).or_default().insert(rank);
    }

    pub(super) fn remove(&mut self, penalty: u32, rank: &Rank) {
        remove_in(&mut self.levels, penalty, rank);
    }

    pub(super) fn insert_skill(&mut self, skill: &str, penalty: u32, rank: SkillRank) {
        self.skills
            .entry(skill.to_string())
            .or_default()
            .entry(penalty)
            .or_default()
            .insert(rank);
    }

    pub(super) fn remove_skill(&mut self, skill: &str, penalty: u32, rank: &SkillRank) {
        if let Some(levels) = self.skills.get_mut(skill) {
            remove_in(levels, penalty, rank);
            if levels.is_empty() {
                self.skills.remove(skill);
            }
        }
    }

    /// Free members by penalty level, lowest penalty first, each level in rank order.
    pub(super) fn levels(&self) -> impl Iterator<Item = &BTreeSet<Rank>> {
        self.levels.values()
    }

    /// Free members who have `skill`, by penalty level, each level best first.
    pub(super) fn skill_levels(&self, skill: &str) -> impl Iterator<Item = &BTreeSet<SkillRank>> {
        self.skills.get(skill).into_iter().flat_map(|l| l.values())
    }
}

/// Removes `rank` from its level, dropping a level left empty (so that walking the
/// levels never meets an empty one).
fn remove_in<T: Ord>(levels: &mut BTreeMap<u32, BTreeSet<T>>, penalty: u32, rank: &T) {
    if let Some(set) = levels.get_mut(&penalty) {
        set.remove(rank);
        if set.is_empty() {
            levels.remove(&penalty);
        }
    }
}

/// The members of `level` after `after` in rank order, then those up to it (round-robin
/// wraps round).
pub(super) fn after<'a>(level: &'a BTreeSet<Rank>, after: &Rank) -> impl Iterator<Item = &'a Rank> {
    level
        .range((Bound::Excluded(after), Bound::Unbounded))
        .chain(level.range((Bound::Unbounded, Bound::Included(after))))
}
