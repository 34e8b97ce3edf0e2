//! Why the device refused a guest command, and which `RESP_ERR_*` the guest
//! gets for it. Every refusal is logged with `tracing::warn!` by the caller.

use crate::backing::BackingError;
use crate::budget::OverBudget;
use crate::commands::{DecodeError, Rect};
use crate::protocol;

#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("{0}")]
    Decode(#[from] DecodeError),
    #[error("resource id 0 is reserved")]
    ZeroResourceId,
    #[error("no resource {0}")]
    UnknownResource(u32),
    #[error("resource {0} already exists")]
    DuplicateResource(u32),
    #[error("unsupported virtio-gpu format {0}")]
    UnsupportedFormat(u32),
    #[error("resource size {width}x{height} is empty or larger than {max}x{max}")]
    BadSize { width: u32, height: u32, max: u32 },
    #[error("too many resources (limit {0})")]
    TooManyResources(usize),
    #[error("host buffer of {} bytes would pass the host memory budget: {}", .0.wanted, .0)]
    OutOfMemory(#[from] OverBudget),
    #[error("{0}")]
    Backing(#[from] BackingError),
    #[error("resource {0} already has backing")]
    AlreadyBacked(u32),
    #[error("resource {0} has no backing")]
    NotBacked(u32),
    #[error("rectangle {rect:?} is empty or outside the {width}x{height} resource")]
    RectOutside { rect: Rect, width: u32, height: u32 },
    #[error("transfer reads backing bytes up to {end:?}, past its {backing} bytes")]
    TransferOutsideBacking { end: Option<u64>, backing: u64 },
    #[error("transfer writes resource bytes up to {end}, past the {backing} its backing holds")]
    TransferPastBacking { end: u64, backing: u64 },
    #[error("no scanout {id} (the device has {count})")]
    BadScanout { id: u32, count: usize },
    #[error("{0} is not valid on this queue")]
    WrongQueue(&'static str),
    #[error("cursor resource {id} is {width}x{height}; virtio-gpu cursors are {side}x{side}", side = crate::resource::CURSOR_SIDE)]
    CursorSize { id: u32, width: u32, height: u32 },
    #[error("cursor resource {0} has no backing that holds its pixels")]
    CursorUnreadable(u32),
    #[error("{0}")]
    CursorImage(#[from] zerocast_frame::CursorImageError),
}

impl Refusal {
    /// The response type the guest gets.
    pub fn response_type(&self) -> u32 {
        use Refusal as R;
        match self {
            R::Decode(e) => e.response_type(),
            R::ZeroResourceId | R::UnknownResource(_) | R::DuplicateResource(_) => {
                protocol::RESP_ERR_INVALID_RESOURCE_ID
            }
            R::UnsupportedFormat(_)
            | R::BadSize { .. }
            | R::RectOutside { .. }
            | R::TransferOutsideBacking { .. }
            | R::TransferPastBacking { .. }
            | R::CursorSize { .. }
            | R::CursorImage(_) => protocol::RESP_ERR_INVALID_PARAMETER,
            R::TooManyResources(_)
            | R::OutOfMemory(_)
            | R::Backing(BackingError::OutOfMemory { .. }) => protocol::RESP_ERR_OUT_OF_MEMORY,
            R::Backing(e) if e.is_bad_parameter() => protocol::RESP_ERR_INVALID_PARAMETER,
            R::BadScanout { .. } => protocol::RESP_ERR_INVALID_SCANOUT_ID,
            R::Backing(_)
            | R::AlreadyBacked(_)
            | R::NotBacked(_)
            | R::WrongQueue(_)
            | R::CursorUnreadable(_) => protocol::RESP_ERR_UNSPEC,
        }
    }

    /// True when the device's host memory budget was spent.
    pub fn is_out_of_memory(&self) -> bool {
        matches!(
            self,
            Refusal::OutOfMemory(_) | Refusal::Backing(BackingError::OutOfMemory { .. })
        )
    }
}
