//! Roles and the permission check, shared so the SDK refuses locally exactly what the
//! server would refuse (the server checks again: it never trusts the client).

use crate::error::RpcError;
use serde::{Deserialize, Serialize};

/// What a role may do. camelCase on the wire, as 100ms's role objects have it; a
/// permission missing from the input is `false`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Permissions {
    /// May end the room for everyone.
    pub end_room: bool,
    /// May remove other peers.
    pub remove_others: bool,
    /// May mute others.
    pub mute: bool,
    /// May ask others to unmute.
    pub unmute: bool,
    /// May change others' roles.
    pub change_role: bool,
    /// May start HLS streaming.
    pub hls_streaming: bool,
    /// May start RTMP streaming.
    pub rtmp_streaming: bool,
    /// May start browser recording.
    pub browser_recording: bool,
    /// May read polls.
    pub poll_read: bool,
    /// May create polls.
    pub poll_write: bool,
}

/// A role of the room's template: `{name, priority, permissions}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Role {
    /// The role's name, as tokens and room codes name it.
    pub name: String,
    /// Higher is more important (used for ordering in UIs).
    #[serde(default)]
    pub priority: i32,
    /// What the role may do.
    #[serde(default)]
    pub permissions: Permissions,
}

/// An action that needs a permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// `end-room`.
    EndRoom,
    /// `peer-leave-request`.
    RemoveOthers,
}

impl Action {
    /// The permission's wire name, for error messages.
    pub fn permission_name(self) -> &'static str {
        match self {
            Action::EndRoom => "endRoom",
            Action::RemoveOthers => "removeOthers",
        }
    }
}

impl Permissions {
    /// Whether these permissions allow `action`.
    pub fn allows(&self, action: Action) -> bool {
        match action {
            Action::EndRoom => self.end_room,
            Action::RemoveOthers => self.remove_others,
        }
    }

    /// `Ok` when allowed, else the 403 error both the SDK and the server answer with.
    pub fn check(&self, action: Action) -> Result<(), RpcError> {
        if self.allows(action) {
            Ok(())
        } else {
            Err(RpcError::forbidden(action.permission_name()))
        }
    }
}
