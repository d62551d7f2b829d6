//! Image garbage collection policy, as kubelet's image GC manager decides it: above
//! `HighThresholdPercent` disk usage, free `capacity * (100 - LowThresholdPercent) / 100 -
//! available` bytes by removing unused, unpinned images least recently used first, sparing
//! those younger than `MinAge` and those first seen in this very pass. `MaxAge`, when set,
//! removes images unused for that long whatever the disk usage.

use std::collections::HashSet;
use std::time::Duration;

use super::digest::Digest;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GcPolicy {
    /// kubelet `imageGCHighThresholdPercent`, default 85.
    pub high_threshold_percent: u8,
    /// kubelet `imageGCLowThresholdPercent`, default 80.
    pub low_threshold_percent: u8,
    /// kubelet `imageMinimumGCAge`, default 2 minutes.
    pub min_age: Duration,
    /// kubelet `imageMaximumGCAge`, default off.
    pub max_age: Option<Duration>,
}

impl Default for GcPolicy {
    fn default() -> Self {
        GcPolicy {
            high_threshold_percent: 85,
            low_threshold_percent: 80,
            min_age: Duration::from_secs(120),
            max_age: None,
        }
    }
}

/// The image filesystem's size and free space, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskUsage {
    pub capacity: u64,
    pub available: u64,
}

impl DiskUsage {
    /// kubelet's `100 - available*100/capacity` (integer division).
    pub fn usage_percent(&self) -> u64 {
        if self.capacity == 0 {
            return 0;
        }
        100 - (self.available.min(self.capacity) * 100 / self.capacity)
    }
}

/// One image as the GC sees it. Times are Unix seconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageUsage {
    pub id: Digest,
    pub size: u64,
    pub last_used: u64,
    pub first_detected: u64,
    /// Pinned images (kubelet: the sandbox image) are never collected.
    pub pinned: bool,
}

/// Which images to remove, in removal order.
pub fn images_to_remove(
    usage: DiskUsage,
    policy: &GcPolicy,
    images: &[ImageUsage],
    in_use: &HashSet<Digest>,
    now: u64,
) -> Vec<Digest> {
    let mut candidates: Vec<&ImageUsage> = images
        .iter()
        .filter(|image| !image.pinned && !in_use.contains(&image.id))
        .collect();
    candidates.sort_by_key(|image| (image.last_used, image.first_detected));

    let mut removed = Vec::new();
    if let Some(max_age) = policy.max_age {
        candidates.retain(|image| {
            let expired = now.saturating_sub(image.last_used) > max_age.as_secs();
            if expired {
                removed.push(image.id.clone());
            }
            !expired
        });
    }

    if usage.capacity == 0 || usage.usage_percent() < u64::from(policy.high_threshold_percent) {
        return removed;
    }
    let target_available =
        usage.capacity as u128 * u128::from(100 - policy.low_threshold_percent.min(100)) / 100;
    let bytes_to_free = target_available.saturating_sub(usage.available as u128);
    let mut freed: u128 = 0;
    for image in candidates {
        if freed >= bytes_to_free {
            break;
        }
        if image.first_detected >= now {
            continue;
        }
        if now.saturating_sub(image.last_used) < policy.min_age.as_secs() {
            continue;
        }
        removed.push(image.id.clone());
        freed += u128::from(image.size);
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> Digest {
        Digest::of_bytes(&[n])
    }

    fn image(n: u8, size: u64, last_used: u64) -> ImageUsage {
        ImageUsage {
            id: id(n),
            size,
            last_used,
            first_detected: 0,
            pinned: false,
        }
    }

    const NOW: u64 = 10_000;

    #[test]
    fn below_high_threshold_nothing_is_removed() {
        let usage = DiskUsage {
            capacity: 1000,
            available: 160,
        };
        assert_eq!(usage.usage_percent(), 84);
        let images = [image(1, 500, 0)];
        assert!(
            images_to_remove(usage, &GcPolicy::default(), &images, &HashSet::new(), NOW).is_empty()
        );
    }

    #[test]
    fn frees_down_to_low_threshold_least_recently_used_first() {
        // 90% used: free 1000*20/100 - 100 = 100 bytes.
        let usage = DiskUsage {
            capacity: 1000,
            available: 100,
        };
        let images = [
            image(1, 60, 300),
            image(2, 60, 100),
            image(3, 60, 200),
            image(4, 60, 50),
        ];
        let in_use: HashSet<_> = [id(4)].into();
        let removed = images_to_remove(usage, &GcPolicy::default(), &images, &in_use, NOW);
        assert_eq!(removed, [id(2), id(3)]);
    }

    #[test]
    fn spares_young_pinned_and_just_detected_images() {
        let usage = DiskUsage {
            capacity: 1000,
            available: 0,
        };
        let mut pinned = image(1, 100, 0);
        pinned.pinned = true;
        let young = image(2, 100, NOW - 60);
        let mut just_detected = image(3, 100, 0);
        just_detected.first_detected = NOW;
        let old = image(4, 100, NOW - 121);
        let removed = images_to_remove(
            usage,
            &GcPolicy::default(),
            &[pinned, young, just_detected, old],
            &HashSet::new(),
            NOW,
        );
        assert_eq!(removed, [id(4)]);
    }

    #[test]
    fn ties_on_last_use_go_by_first_detection() {
        let usage = DiskUsage {
            capacity: 100,
            available: 10,
        };
        let mut a = image(1, 10, 5);
        a.first_detected = 3;
        let mut b = image(2, 10, 5);
        b.first_detected = 1;
        let removed = images_to_remove(usage, &GcPolicy::default(), &[a, b], &HashSet::new(), NOW);
        // 10 bytes to free: one image is enough.
        assert_eq!(removed, [id(2)]);
    }

    #[test]
    fn max_age_removes_regardless_of_usage() {
        let usage = DiskUsage {
            capacity: 1000,
            available: 900,
        };
        let policy = GcPolicy {
            max_age: Some(Duration::from_secs(3600)),
            ..GcPolicy::default()
        };
        let images = [image(1, 10, NOW - 3601), image(2, 10, NOW - 3599)];
        assert_eq!(
            images_to_remove(usage, &policy, &images, &HashSet::new(), NOW),
            [id(1)]
        );
    }
}
