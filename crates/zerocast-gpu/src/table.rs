//! [`ResourceTable`]: read-only lookups of the guest's resources by id, for
//! request/response mode (the guest names a resource, the host encodes it).

use std::sync::Arc;

use crate::device::Shared;
use crate::snapshot::ResourceSnapshot;

/// A handle on the device's resources. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ResourceTable {
    shared: Arc<Shared>,
}

impl ResourceTable {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        ResourceTable { shared }
    }

    /// The whole of resource `id` as it is now, if it exists and has
    /// backing. The snapshot keeps the pixels mapped while it lives, but
    /// reads nothing once the guest unrefs the resource or detaches its
    /// backing: take one per read (request/response mode holds it for one
    /// encode) and drop it after.
    pub fn get(&self, id: u32) -> Option<ResourceSnapshot> {
        let state = self.shared.lock();
        let resource = state.resources.get(id).ok()?;
        resource.snapshot(id, resource.full_rect())
    }

    /// The ids of all resources, ascending.
    pub fn ids(&self) -> Vec<u32> {
        self.shared.lock().resources.ids()
    }

    /// The resource scanout `index` shows (0: none or no such scanout).
    pub fn on_scanout(&self, index: u32) -> u32 {
        let state = self.shared.lock();
        state
            .scanouts
            .get(index as usize)
            .map_or(0, |s| s.resource_id())
    }
}
