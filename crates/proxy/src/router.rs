//! Model routing: public name → group of deployments (exact name first, then the most specific
//! wildcard), then one deployment by the configured strategy, skipping those cooling down. Each
//! group limits how many of its deployments may cool down at once, so one stays routable.

use foldhash::{HashMap, HashMapExt};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use rand::Rng;
use tollgate_domain::model_name::{is_pattern, specificity, wildcard_match};

use crate::deployment::{now_ms, Deployment, EjectionGate, MAX_EJECTION_PERCENT};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    SimpleShuffle,
    LeastBusy,
    UsageBased,
    LatencyBased,
}

pub type Group = Arc<Vec<Arc<Deployment>>>;

/// The deployments serving one request's model, and what a wildcard captured.
#[derive(Clone)]
pub struct Resolved {
    pub deployments: Group,
    pub captured: String,
}

pub struct ModelRouter {
    exact: HashMap<String, Group>,
    /// Wildcard groups, most specific first.
    patterns: Vec<(String, Group)>,
    strategy: Strategy,
}

impl ModelRouter {
    pub fn new(deployments: Vec<Deployment>, strategy: Strategy) -> ModelRouter {
        let mut by_name: Vec<(String, Vec<Arc<Deployment>>)> = Vec::new();
        for d in deployments {
            let name = d.spec.model_name.clone();
            match by_name.iter_mut().find(|(n, _)| *n == name) {
                Some((_, v)) => v.push(Arc::new(d)),
                None => by_name.push((name, vec![Arc::new(d)])),
            }
        }
        let mut exact = HashMap::new();
        let mut patterns = Vec::new();
        for (name, group) in by_name {
            let gate = EjectionGate::new(&group, MAX_EJECTION_PERCENT);
            for d in &group {
                d.join_group(gate.clone());
            }
            if is_pattern(&name) {
                patterns.push((name, Arc::new(group)));
            } else {
                exact.insert(name, Arc::new(group));
            }
        }
        patterns.sort_by_key(|p| std::cmp::Reverse(specificity(&p.0)));
        ModelRouter {
            exact,
            patterns,
            strategy,
        }
    }

    /// The group serving `model`, and what a wildcard captured of it.
    fn find<'m>(&self, model: &'m str) -> Option<(&Group, &'m str)> {
        if let Some(g) = self.exact.get(model) {
            return Some((g, ""));
        }
        self.patterns
            .iter()
            .find_map(|(pattern, g)| wildcard_match(pattern, model).map(|captured| (g, captured)))
    }

    /// Whether some group serves `model` (what `resolve` would find, without building it).
    pub fn knows(&self, model: &str) -> bool {
        self.find(model).is_some()
    }

    pub fn resolve(&self, model: &str) -> Option<Resolved> {
        self.find(model).map(|(g, captured)| Resolved {
            deployments: g.clone(),
            captured: captured.to_string(),
        })
    }

    /// Public model names (exact ones; wildcard patterns only when asked), sorted.
    pub fn model_names(&self, include_wildcards: bool) -> Vec<String> {
        let mut names: Vec<String> = self.exact.keys().cloned().collect();
        if include_wildcards {
            names.extend(self.patterns.iter().map(|(p, _)| p.clone()));
        }
        names.sort();
        names
    }

    pub fn deployments(&self) -> impl Iterator<Item = &Arc<Deployment>> {
        self.exact
            .values()
            .chain(self.patterns.iter().map(|(_, g)| g))
            .flat_map(|g| g.iter())
    }

    /// Picks a deployment, preferring ones not tried yet in this request. `None` when every
    /// deployment is cooling down or out of its own rpm/tpm for this minute.
    pub fn pick(&self, group: &Group, tried: &[usize]) -> Option<(usize, Arc<Deployment>)> {
        self.pick_at(now_ms(), group, tried)
    }

    fn pick_at(
        &self,
        now: u64,
        group: &Group,
        tried: &[usize],
    ) -> Option<(usize, Arc<Deployment>)> {
        let healthy: Vec<usize> = (0..group.len())
            .filter(|&i| !group[i].is_cooling_down(now) && group[i].has_capacity(now))
            .collect();
        let fresh: Vec<usize> = healthy
            .iter()
            .copied()
            .filter(|i| !tried.contains(i))
            .collect();
        let candidates = if fresh.is_empty() { healthy } else { fresh };
        let idx = match candidates.len() {
            0 => return None,
            1 => candidates[0],
            _ => self.choose(group, &candidates),
        };
        Some((idx, group[idx].clone()))
    }

    fn choose(&self, group: &Group, candidates: &[usize]) -> usize {
        let by_min = |f: &dyn Fn(&Deployment) -> u64| -> usize {
            let mut best = candidates[0];
            let mut best_v = u64::MAX;
            let mut ties = 0u32;
            let mut rng = rand::rng();
            for &i in candidates {
                let v = f(&group[i]);
                if v < best_v {
                    best = i;
                    best_v = v;
                    ties = 1;
                } else if v == best_v {
                    // Reservoir sampling among equals, so ties spread evenly.
                    ties += 1;
                    if rng.random_range(0..ties) == 0 {
                        best = i;
                    }
                }
            }
            best
        };
        match self.strategy {
            Strategy::SimpleShuffle => candidates[rand::rng().random_range(0..candidates.len())],
            Strategy::LeastBusy => by_min(&|d| d.in_flight.load(Ordering::Relaxed)),
            Strategy::UsageBased => by_min(&|d| d.minute_tokens()),
            Strategy::LatencyBased => by_min(&|d| d.latency_ewma_us.load(Ordering::Relaxed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deployment::{Credential, DeploymentSpec, ProviderKind};
    use std::time::Duration;

    fn dep(name: &str, id: &str) -> Deployment {
        crate::providers::deploy(DeploymentSpec {
            id: id.into(),
            model_name: name.into(),
            provider: ProviderKind::OpenAiCompatible("openai"),
            upstream_model: "*".into(),
            api_base: None,
            credential: Credential::None,
            api_version: None,
            organization: None,
            rpm: None,
            tpm: None,
            timeout: None,
            max_retries: None,
            mock_response: None,
            default_params: Default::default(),
            price_override: None,
            base_model: None,
            max_output_tokens: None,
            drop_params: false,
            vertex: None,
        })
    }

    #[test]
    fn exact_name_wins_then_longest_pattern() {
        let r = ModelRouter::new(
            vec![
                dep("*", "catch-all"),
                dep("openai/*", "openai"),
                dep("openai/gpt-4o", "exact"),
                dep("openai/gpt-*", "gpt"),
            ],
            Strategy::SimpleShuffle,
        );
        let id = |m: &str| r.resolve(m).map(|g| g.deployments[0].spec.id.clone());
        assert_eq!(id("openai/gpt-4o").as_deref(), Some("exact"));
        assert_eq!(id("openai/gpt-4.1").as_deref(), Some("gpt"));
        assert_eq!(id("openai/o3").as_deref(), Some("openai"));
        assert_eq!(id("mistral/x").as_deref(), Some("catch-all"));
        assert_eq!(r.resolve("openai/o3").unwrap().captured, "o3");
        assert_eq!(r.model_names(false), vec!["openai/gpt-4o".to_string()]);
        let exact_only =
            ModelRouter::new(vec![dep("openai/gpt-4o", "exact")], Strategy::SimpleShuffle);
        for router in [&r, &exact_only] {
            for m in [
                "openai/gpt-4o",
                "openai/gpt-4.1",
                "openai/o3",
                "mistral/x",
                "gpt-4o",
                "",
            ] {
                assert_eq!(router.knows(m), router.resolve(m).is_some(), "{m}");
            }
        }
        assert!(!exact_only.knows("openai/o3"));
    }

    #[test]
    fn groups_share_load_and_skip_cooled_down() {
        let r = ModelRouter::new(vec![dep("m", "a"), dep("m", "b")], Strategy::SimpleShuffle);
        let g = r.resolve("m").unwrap().deployments;
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            seen.insert(r.pick(&g, &[]).unwrap().1.spec.id.clone());
        }
        assert_eq!(seen.len(), 2, "both deployments get traffic");
        // Untried deployments come first on a retry.
        for _ in 0..20 {
            assert_eq!(r.pick(&g, &[0]).unwrap().0, 1);
        }
        assert!(g[0].on_failure(0, Duration::from_secs(60), true));
        for _ in 0..20 {
            assert_eq!(r.pick(&g, &[]).unwrap().1.spec.id, "b");
        }
        assert!(
            !g[1].on_failure(0, Duration::from_secs(60), true),
            "the last routable deployment of a group is never cooled down"
        );
        assert_eq!(r.pick(&g, &[]).unwrap().1.spec.id, "b");
    }

    const S: u64 = 1000;

    fn group_of(n: usize) -> (ModelRouter, Group) {
        let deps = (0..n).map(|i| dep("m", &format!("d{i}"))).collect();
        let r = ModelRouter::new(deps, Strategy::SimpleShuffle);
        let g = r.resolve("m").unwrap().deployments;
        (r, g)
    }

    fn routable(r: &ModelRouter, g: &Group, now: u64) -> Vec<String> {
        let mut seen: Vec<String> = (0..200)
            .filter_map(|_| r.pick_at(now, g, &[]).map(|(_, d)| d.spec.id.clone()))
            .collect();
        seen.sort();
        seen.dedup();
        seen
    }

    #[test]
    fn at_most_half_of_a_group_cools_down_at_once() {
        let t0 = now_ms();
        let base = Duration::from_secs(10);
        let (r, g) = group_of(4);
        assert!(g[0].on_failure_at(t0, 0, base, true));
        assert!(g[1].on_failure_at(t0 + S, 0, base, true));
        assert!(
            !g[2].on_failure_at(t0 + 2 * S, 0, base, true),
            "a third of four would pass 50 %"
        );
        assert!(!g[3].on_failure_at(t0 + 2 * S, 0, base, true));
        assert_eq!(routable(&r, &g, t0 + 2 * S), vec!["d2", "d3"]);
        // d0 comes back after its 10 s; d2 failed before and fails once more: now it may go.
        assert!(g[2].on_failure_at(t0 + 10 * S, 0, base, true));
        assert_eq!(routable(&r, &g, t0 + 10 * S), vec!["d0", "d3"]);

        // Three deployments: 50 % rounds down to one.
        let (r, g) = group_of(3);
        assert!(g[0].on_failure_at(t0, 0, base, true));
        assert!(!g[1].on_failure_at(t0, 0, base, true));
        assert!(!g[2].on_failure_at(t0, 0, base, true));
        assert_eq!(routable(&r, &g, t0), vec!["d1", "d2"]);
    }

    #[test]
    fn repeated_ejections_grow_and_are_capped() {
        let t0 = now_ms();
        let base = Duration::from_secs(10);
        let (r, g) = group_of(2);
        let mut now = t0;
        // Each time it comes back it fails at once: out for 10 s, 20 s, 30 s … up to 100 s.
        for n in 1..=12u64 {
            assert!(g[0].on_failure_at(now, 0, base, true), "ejection {n}");
            let expected = n.min(10) * 10 * S;
            assert_eq!(
                routable(&r, &g, now + expected - 1),
                vec!["d1"],
                "ejection {n}"
            );
            now += expected;
            assert_eq!(
                routable(&r, &g, now),
                vec!["d0", "d1"],
                "back after ejection {n}"
            );
        }
        assert_eq!(g[0].ejections(), 12);
        // A long base is capped at 300 s (5 minutes), not 10×.
        assert_eq!(
            crate::deployment::ejection_time(Duration::from_secs(60), 9),
            Duration::from_secs(300)
        );
        assert_eq!(
            crate::deployment::ejection_time(Duration::from_secs(600), 3),
            Duration::from_secs(600),
            "a cooldown_time above the cap is kept as configured"
        );
    }

    #[test]
    fn serving_well_again_decays_the_ejection_count() {
        let t0 = now_ms();
        let base = Duration::from_secs(10);
        let (r, g) = group_of(2);
        assert!(g[0].on_failure_at(t0, 0, base, true));
        assert!(g[0].on_failure_at(t0 + 10 * S, 0, base, true));
        assert!(g[0].on_failure_at(t0 + 30 * S, 0, base, true));
        assert_eq!(g[0].ejections(), 3);
        let back = t0 + 60 * S;
        // A success soon after coming back forgives nothing yet.
        g[0].decay_at(back + 5 * S);
        assert_eq!(g[0].ejections(), 3);
        // Serving for two base lengths forgives two ejections.
        g[0].decay_at(back + 25 * S);
        assert_eq!(g[0].ejections(), 1);
        // So the next failure cools it down for 2 × 10 s, not 4 × 10 s.
        let now = back + 26 * S;
        assert!(g[0].on_failure_at(now, 0, base, true));
        assert_eq!(routable(&r, &g, now + 20 * S - 1), vec!["d1"]);
        assert_eq!(routable(&r, &g, now + 20 * S), vec!["d0", "d1"]);
        // Long healthy service forgives everything, and never below zero.
        g[0].decay_at(now + 20 * S + 3600 * S);
        assert_eq!(g[0].ejections(), 0);
    }

    #[test]
    fn least_busy_and_latency_strategies() {
        let r = ModelRouter::new(vec![dep("m", "a"), dep("m", "b")], Strategy::LeastBusy);
        let g = r.resolve("m").unwrap().deployments;
        g[0].on_start();
        assert_eq!(r.pick(&g, &[]).unwrap().1.spec.id, "b");
        let r = ModelRouter::new(vec![dep("m", "a"), dep("m", "b")], Strategy::LatencyBased);
        let g = r.resolve("m").unwrap().deployments;
        g[0].on_success(Duration::from_millis(5), 0);
        g[1].on_success(Duration::from_millis(50), 0);
        assert_eq!(r.pick(&g, &[]).unwrap().1.spec.id, "a");
    }

    #[test]
    fn rpm_limit_takes_a_deployment_out_for_the_minute() {
        let mut d = dep("m", "a");
        d.spec.rpm = Some(2);
        let r = ModelRouter::new(vec![d], Strategy::UsageBased);
        let g = r.resolve("m").unwrap().deployments;
        g[0].on_start();
        g[0].on_start();
        assert!(r.pick(&g, &[]).is_none());
    }
}
