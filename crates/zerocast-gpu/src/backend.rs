//! The vhost-user side: a `VhostUserBackend` that offers QEMU a 2D
//! virtio-gpu (EDID, no VIRGL), pulls requests off the control and cursor
//! queues, runs them on the device and puts the responses back.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tracing::{debug, warn};
use vhost::vhost_user::message::{VhostUserProtocolFeatures, VhostUserVirtioFeatures};
use vhost::vhost_user::GpuBackend;
use vhost_user_backend::{VhostUserBackend, VringRwLock, VringT};
use virtio_queue::{DescriptorChain, QueueOwnedT};
use vm_memory::{ByteValued, GuestAddressSpace, GuestMemoryAtomic, GuestMemoryMmap};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::event::{
    new_event_consumer_and_notifier, EventConsumer, EventFlag, EventNotifier,
};

use crate::commands::MAX_REQUEST_BYTES;
use crate::device::Shared;
use crate::protocol::{self, ConfigSpace};
use crate::stats::Stats;

const QUEUE_SIZE: usize = 1024;
const NUM_QUEUES: usize = 2;

type Memory = GuestMemoryAtomic<GuestMemoryMmap>;

/// The device as QEMU's vhost-user frontend sees it.
pub(crate) struct GpuDevice {
    shared: Arc<Shared>,
    num_scanouts: u32,
    mem: Mutex<Option<Memory>>,
    event_idx: AtomicBool,
    /// Our end of QEMU's display channel (`VHOST_USER_GPU_SET_SOCKET`). It is
    /// kept open but never written: with `-display none` QEMU needs no
    /// display messages (frames leave through zerocast, not QEMU), and a
    /// closed end makes QEMU's reader spin on end-of-file.
    qemu_display: Mutex<Option<GpuBackend>>,
    exit_consumer: EventConsumer,
    exit_notifier: EventNotifier,
}

impl GpuDevice {
    pub fn new(shared: Arc<Shared>, num_scanouts: u32) -> io::Result<Self> {
        let (exit_consumer, exit_notifier) = new_event_consumer_and_notifier(EventFlag::NONBLOCK)?;
        Ok(GpuDevice {
            shared,
            num_scanouts,
            mem: Mutex::new(None),
            event_idx: AtomicBool::new(false),
            qemu_display: Mutex::new(None),
            exit_consumer,
            exit_notifier,
        })
    }

    /// Stops the vring worker thread.
    pub fn stop_workers(&self) {
        if let Err(e) = self.exit_notifier.notify() {
            warn!(%e, "cannot stop the vring worker thread");
        }
    }

    /// Runs every available request of one queue.
    fn process_queue(&self, queue: u16, vring: &VringRwLock, mem: &Memory) -> io::Result<()> {
        let event_idx = self.event_idx.load(Ordering::Relaxed);
        loop {
            if event_idx {
                vring.disable_notification().map_err(io::Error::other)?;
            }
            let mem = mem.memory().into_inner();
            let chains: Vec<_> = vring
                .get_mut()
                .get_queue_mut()
                .iter(mem.clone())
                .map_err(io::Error::other)?
                .collect();
            for chain in &chains {
                let written = self.process_chain(queue, chain.clone(), &mem);
                vring
                    .add_used(chain.head_index(), written)
                    .map_err(io::Error::other)?;
            }
            if !chains.is_empty() {
                vring.signal_used_queue()?;
            }
            // With EVENT_IDX, requests that arrived while notifications were
            // off would be missed: go round until none came in.
            if !event_idx || !vring.enable_notification().map_err(io::Error::other)? {
                return Ok(());
            }
        }
    }

    /// Runs one request; returns the bytes written back to the guest.
    fn process_chain(
        &self,
        queue: u16,
        chain: DescriptorChain<Arc<GuestMemoryMmap>>,
        mem: &GuestMemoryMmap,
    ) -> u32 {
        let refused = |what: &str, e: &dyn std::fmt::Display| {
            Stats::add(&self.shared.stats.errors, 1);
            warn!(queue, "malformed descriptor chain ({what}): {e}");
            0
        };
        let mut reader = match chain.clone().reader(mem) {
            Ok(r) => r,
            Err(e) => return refused("readable part", &e),
        };
        let mut writer = match chain.writer(mem) {
            Ok(w) => w,
            Err(e) => return refused("writable part", &e),
        };
        let mut request = vec![0u8; reader.available_bytes().min(MAX_REQUEST_BYTES)];
        if let Err(e) = reader.read_exact(&mut request) {
            return refused("read", &e);
        }
        if queue == protocol::CURSOR_QUEUE {
            self.shared.cursor(&request);
            return 0;
        }
        let response = self.shared.control(&request, mem);
        let n = writer.available_bytes().min(response.len());
        if n < response.len() {
            warn!(
                room = n,
                needed = response.len(),
                "response does not fit the guest's buffer"
            );
        }
        match writer.write_all(&response[..n]) {
            Ok(()) => u32::try_from(n).expect("our responses are a few KiB at most"),
            Err(e) => refused("write", &e),
        }
    }
}

impl VhostUserBackend for GpuDevice {
    type Bitmap = ();
    type Vring = VringRwLock;

    fn num_queues(&self) -> usize {
        NUM_QUEUES
    }

    fn max_queue_size(&self) -> usize {
        QUEUE_SIZE
    }

    fn features(&self) -> u64 {
        (1 << protocol::VIRTIO_F_VERSION_1)
            | (1 << protocol::VIRTIO_RING_F_INDIRECT_DESC)
            | (1 << protocol::VIRTIO_RING_F_EVENT_IDX)
            | (1 << protocol::VIRTIO_GPU_F_EDID)
            | (1 << protocol::VIRTIO_F_RING_RESET)
            | VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits()
    }

    fn protocol_features(&self) -> VhostUserProtocolFeatures {
        VhostUserProtocolFeatures::CONFIG | VhostUserProtocolFeatures::MQ
    }

    fn acked_features(&self, features: u64) {
        debug!(
            "features acked: {features:#x} (offered {:#x})",
            self.features()
        );
    }

    fn set_event_idx(&self, enabled: bool) {
        self.event_idx.store(enabled, Ordering::Relaxed);
    }

    /// The config space. QEMU overrides `num_scanouts` and the event fields
    /// with its own; we report the same scanout count and no capsets.
    fn get_config(&self, offset: u32, size: u32) -> Vec<u8> {
        let config = ConfigSpace {
            num_scanouts: self.num_scanouts.into(),
            ..Default::default()
        };
        let (offset, size) = (offset as usize, size as usize);
        config
            .as_slice()
            .get(offset..offset.saturating_add(size))
            .map_or_else(Vec::new, <[u8]>::to_vec)
    }

    fn update_memory(&self, mem: Memory) -> io::Result<()> {
        debug!("guest memory table updated");
        *self.mem.lock().unwrap_or_else(PoisonError::into_inner) = Some(mem);
        Ok(())
    }

    /// QEMU sends this when the guest driver starts (DRIVER_OK): a new
    /// session, so resources of an earlier one are forgotten.
    fn set_gpu_socket(&self, gpu_backend: GpuBackend) -> io::Result<()> {
        debug!("QEMU display channel connected: new driver session");
        self.shared.reset();
        *self
            .qemu_display
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(gpu_backend);
        Ok(())
    }

    fn reset_device(&self) {
        self.shared.reset();
    }

    fn exit_event(&self, _thread_index: usize) -> Option<(EventConsumer, EventNotifier)> {
        let consumer = self.exit_consumer.try_clone().ok()?;
        let notifier = self.exit_notifier.try_clone().ok()?;
        Some((consumer, notifier))
    }

    fn handle_event(
        &self,
        device_event: u16,
        evset: EventSet,
        vrings: &[VringRwLock],
        _thread_id: usize,
    ) -> io::Result<()> {
        if evset != EventSet::IN {
            return Err(io::Error::other(format!("unexpected events {evset:?}")));
        }
        let vring = match device_event {
            protocol::CONTROL_QUEUE | protocol::CURSOR_QUEUE => vrings
                .get(usize::from(device_event))
                .ok_or_else(|| io::Error::other("missing vring"))?,
            other => return Err(io::Error::other(format!("unknown device event {other}"))),
        };
        let mem = self
            .mem
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| io::Error::other("queue kicked before the memory table was set"))?;
        self.process_queue(device_event, vring, &mem)
    }
}
