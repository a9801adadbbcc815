//! The target manifest: the list of targets that results refer to by index, sent in chunks when the
//! agent's targets change (SPEC.md, "Manifest").

use super::message::encoded_len;
use super::{Error, Result, MAX_FRAME_LEN, OVERHEAD};
use crate::wire::endpoint::{Category, ServiceArea};
use heapless::{String, Vec};
use serde::{Deserialize, Serialize};

/// Most targets in one manifest: target indices are one byte, and the total count is one byte too.
pub const MAX_TARGETS: usize = u8::MAX as usize;

/// Most targets in one manifest chunk. Sixteen typical Microsoft 365 targets (30-40 bytes each) fill half a
/// frame; the bound keeps a chunk in memory near 5 KiB.
pub const MAX_MANIFEST_TARGETS: usize = 16;

/// Longest host name: a DNS name in presentation form (RFC 1035 §2.3.4), or an IP literal.
pub const MAX_HOST_LEN: usize = 253;

/// Most TCP or UDP ports listed for one target (Microsoft's endpoint sets list up to five, e.g. 25, 143,
/// 587, 993, 995).
pub const MAX_PORTS: usize = 8;

/// One target the agent probes, as Microsoft's endpoints web service (or the config) describes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Target {
    /// The host name probed (`outlook.office365.com`), or an IP literal for address-only endpoints.
    pub host: String<MAX_HOST_LEN>,
    /// Microsoft's service area of the endpoint set.
    pub service_area: ServiceArea,
    /// Microsoft's connectivity category of the endpoint set.
    pub category: Category,
    /// Whether Microsoft marks the endpoint set required: a blocked required endpoint is a finding.
    pub required: bool,
    /// TCP ports, most important first: the tcp, tls and http probes use the first one.
    pub tcp_ports: Vec<u16, MAX_PORTS>,
    /// UDP ports (Teams media: 3478-3481).
    pub udp_ports: Vec<u16, MAX_PORTS>,
}

/// One chunk of a target manifest: targets `first .. first + targets.len()` of `total`.
///
/// A manifest that does not fit in one frame goes in several chunks with the same `manifest_id`, each
/// its own frame with its own sequence; the collector has the manifest when it has every index below
/// `total`. [`Manifest::chunk`] cuts them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Manifest {
    /// Names this target list; results carry it. Unique within the agent's sequence epoch.
    pub manifest_id: u32,
    /// Targets in the whole manifest, across all chunks.
    pub total: u8,
    /// Index of this chunk's first target.
    pub first: u8,
    /// This chunk's targets.
    pub targets: Vec<Target, MAX_MANIFEST_TARGETS>,
}

impl Manifest {
    /// The chunk of `all` (the agent's whole target list) that starts at index `first`: as many targets as
    /// fit in one frame. The next chunk starts at `first + chunk.targets.len()`.
    pub fn chunk(manifest_id: u32, all: &[Target], first: usize) -> Result<Self> {
        let total = u8::try_from(all.len()).map_err(|_| Error::TooManyItems)?;
        let rest = all.get(first..).ok_or(Error::Invalid)?;
        let mut chunk = Self {
            manifest_id,
            total,
            // `first` <= all.len() <= u8::MAX, checked just above.
            first: first as u8,
            targets: Vec::new(),
        };
        // A target encodes to at most ~310 bytes, so every chunk takes at least one.
        for target in rest {
            if chunk.targets.push(target.clone()).is_err() {
                break;
            }
            if chunk.sealed_len()? > MAX_FRAME_LEN {
                chunk.targets.pop();
                break;
            }
        }
        Ok(chunk)
    }

    /// Length of the sealed frame this chunk makes.
    pub fn sealed_len(&self) -> Result<usize> {
        Ok(OVERHEAD + encoded_len(self)?)
    }

    pub(super) fn validate(&self) -> Result<()> {
        if usize::from(self.first) + self.targets.len() > usize::from(self.total) {
            return Err(Error::Invalid);
        }
        Ok(())
    }
}
