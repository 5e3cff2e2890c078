//! Frames on a byte stream (QUIC's streams): each frame behind its length,
//! 4 bytes big-endian, not counting the prefix (`docs/protocol.md`).
//!
//! [`StreamFramer`] cuts whole frames out of the chunks a stream delivers,
//! wherever the chunk boundaries fall. Both ends use it: the server on the
//! control stream, the client on the control stream and the lanes.

use bytes::{Buf as _, Bytes, BytesMut};

/// Bytes of the length prefix.
pub const LENGTH_PREFIX_BYTES: usize = 4;

/// A stream announced a frame larger than the reader accepts. The rest of
/// the stream cannot be framed without reading what the reader refuses to
/// hold, so the stream is unusable after this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("frame of {len} bytes; the limit is {max}")]
pub struct FrameTooLarge {
    /// The announced length.
    pub len: usize,
    /// The reader's limit.
    pub max: usize,
}

/// Cuts a length-prefixed stream into frames.
///
/// A frame that lies whole inside one chunk is handed out as a slice of
/// that chunk, without a copy; only a frame that spans chunks is copied,
/// once, as its pieces arrive. An idle framer holds no allocation.
#[derive(Debug)]
pub struct StreamFramer {
    /// The start of a frame that spans chunks (prefix included).
    partial: BytesMut,
    max_frame_bytes: usize,
}

impl StreamFramer {
    /// A framer refusing frames over `max_frame_bytes`.
    pub fn new(max_frame_bytes: usize) -> Self {
        Self {
            partial: BytesMut::new(),
            max_frame_bytes,
        }
    }

    /// Takes in the next `chunk` of the stream and appends every frame it
    /// completes to `frames`, in stream order.
    pub fn push(&mut self, mut chunk: Bytes, frames: &mut Vec<Bytes>) -> Result<(), FrameTooLarge> {
        // First finish a frame begun in an earlier chunk.
        if !self.partial.is_empty() {
            if self.partial.len() < LENGTH_PREFIX_BYTES {
                let take = (LENGTH_PREFIX_BYTES - self.partial.len()).min(chunk.len());
                self.partial.extend_from_slice(&chunk.split_to(take));
            }
            let Some(&prefix) = self.partial.first_chunk::<LENGTH_PREFIX_BYTES>() else {
                // `chunk` is used up inside the prefix.
                return Ok(());
            };
            let want = LENGTH_PREFIX_BYTES + self.checked_len(prefix)?;
            let take = (want - self.partial.len()).min(chunk.len());
            self.partial.reserve(want - self.partial.len());
            self.partial.extend_from_slice(&chunk.split_to(take));
            if self.partial.len() < want {
                // `chunk` is used up inside the frame.
                return Ok(());
            }
            let mut frame = std::mem::take(&mut self.partial).freeze();
            frame.advance(LENGTH_PREFIX_BYTES);
            frames.push(frame);
        }
        // Then every frame lying whole in the rest of `chunk`.
        while let Some(prefix) = chunk.first_chunk::<LENGTH_PREFIX_BYTES>() {
            let len = self.checked_len(*prefix)?;
            if chunk.len() < LENGTH_PREFIX_BYTES + len {
                break;
            }
            chunk.advance(LENGTH_PREFIX_BYTES);
            frames.push(chunk.split_to(len));
        }
        if !chunk.is_empty() {
            self.partial.extend_from_slice(&chunk);
        }
        Ok(())
    }

    /// Whether the stream is between frames: a stream that ends while this
    /// is false ended inside a frame.
    pub fn is_between_frames(&self) -> bool {
        self.partial.is_empty()
    }

    fn checked_len(&self, prefix: [u8; LENGTH_PREFIX_BYTES]) -> Result<usize, FrameTooLarge> {
        let len = u32::from_be_bytes(prefix) as usize;
        if len > self.max_frame_bytes {
            return Err(FrameTooLarge {
                len,
                max: self.max_frame_bytes,
            });
        }
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn stream_of(frames: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for f in frames {
            out.extend_from_slice(&(f.len() as u32).to_be_bytes());
            out.extend_from_slice(f);
        }
        out
    }

    /// Feeds `stream` cut at `cuts` and returns the frames read.
    fn read(
        stream: &[u8],
        cuts: &[usize],
        max: usize,
    ) -> Result<(Vec<Bytes>, bool), FrameTooLarge> {
        let mut framer = StreamFramer::new(max);
        let mut frames = Vec::new();
        let mut at = 0;
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
        cuts.sort_unstable();
        cuts.push(stream.len());
        for cut in cuts {
            framer.push(Bytes::copy_from_slice(&stream[at..cut]), &mut frames)?;
            at = cut;
        }
        Ok((frames, framer.is_between_frames()))
    }

    #[test]
    fn frames_inside_one_chunk_are_slices_of_it() {
        let stream = Bytes::from(stream_of(&[b"ab".to_vec(), b"cde".to_vec()]));
        let mut frames = Vec::new();
        StreamFramer::new(16)
            .push(stream.clone(), &mut frames)
            .unwrap();
        assert_eq!(frames, [&b"ab"[..], &b"cde"[..]]);
        // Same memory as the chunk: no copy was made.
        assert_eq!(frames[0].as_ptr(), stream[4..].as_ptr());
    }

    #[test]
    fn a_frame_split_byte_by_byte_comes_out_whole() {
        let stream = stream_of(&[b"hello".to_vec(), Vec::new(), b"x".to_vec()]);
        let cuts: Vec<usize> = (1..stream.len()).collect();
        let (frames, between) = read(&stream, &cuts, 16).unwrap();
        assert_eq!(frames, [&b"hello"[..], &b""[..], &b"x"[..]]);
        assert!(between);
    }

    #[test]
    fn an_oversized_frame_is_refused_before_its_body_arrives() {
        let mut framer = StreamFramer::new(8);
        let mut frames = Vec::new();
        let err = framer
            .push(Bytes::from_static(&[0, 0, 0, 9]), &mut frames)
            .unwrap_err();
        assert_eq!(err, FrameTooLarge { len: 9, max: 8 });
        // Also when the prefix itself spans chunks.
        let mut framer = StreamFramer::new(8);
        framer
            .push(Bytes::from_static(&[0, 0]), &mut frames)
            .unwrap();
        assert!(
            framer
                .push(Bytes::from_static(&[1, 0]), &mut frames)
                .is_err()
        );
        assert!(frames.is_empty());
    }

    #[test]
    fn a_stream_ending_inside_a_frame_is_not_between_frames() {
        let mut framer = StreamFramer::new(16);
        let mut frames = Vec::new();
        framer
            .push(Bytes::from_static(&[0, 0, 0, 3, b'a']), &mut frames)
            .unwrap();
        assert!(frames.is_empty());
        assert!(!framer.is_between_frames());
    }

    proptest! {
        #[test]
        fn any_chunking_reads_the_frames_written(
            frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..12),
            cuts in proptest::collection::vec(any::<usize>(), 0..20),
        ) {
            let stream = stream_of(&frames);
            let (read_frames, between) = read(&stream, &cuts, 64).unwrap();
            prop_assert_eq!(read_frames, frames);
            prop_assert!(between);
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            stream in proptest::collection::vec(any::<u8>(), 0..200),
            cuts in proptest::collection::vec(any::<usize>(), 0..20),
            max in 0usize..64,
        ) {
            if let Ok((frames, _)) = read(&stream, &cuts, max) {
                prop_assert!(frames.iter().all(|f| f.len() <= max));
            }
        }
    }
}
