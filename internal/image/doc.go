// Package image is berth's local image store: the backend of the CRI
// ImageService. It keeps content blobs by digest, each layer unpacked once
// into its own directory (whiteouts in overlay form), and image records
// persisted in the store's images bucket and mirrored in memory so that
// List, which kubelet calls every few seconds, never touches the disk.
//
// On-disk layout under the root dir given to New:
//
//	content/blobs/sha256/<hex>   manifests, indexes, configs and layer blobs
//	                             exactly as pulled or imported (compressed)
//	layers/<chain-id hex>/       one unpacked layer each, keyed by its OCI
//	                             chain ID so that identical layer stacks are
//	                             shared by images; whiteouts are 0/0 char
//	                             devices and opaque dirs carry
//	                             trusted.overlay.opaque=y, so the dirs stack
//	                             directly as overlayfs lowerdirs; an OCI
//	                             artifact's files dir (its layer blobs
//	                             hard-linked under their titles, see
//	                             ParseArtifact) is one too
//	tmp/                         blobs being written, layers being unpacked,
//	                             archives being imported and layers being
//	                             deleted; everything in it is garbage after a
//	                             crash and New removes it
//
// Nothing appears under content/ or layers/ except by rename from tmp/ after
// its digest has been verified, so a crash never leaves a half blob or a
// half layer under its final name.
//
// Images enter through an Ingest session (WriteBlob for manifests and
// configs, Layer for layer blobs, which stores and unpacks in one pass, then
// Commit). Import uses it for docker-save and OCI image-layout archives, and
// registry pulls are meant to use it the same way. Blobs and layer dirs that
// no image record, no running ingest and (for layers) no container refers
// to are removed by GC.
package image
