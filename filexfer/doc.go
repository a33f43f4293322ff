// Package filexfer will send files and folders peer to peer on their own
// secure streams: offer, accept or decline, stream, verify by hash, and
// resume after a cut, writing only below the download directory through
// os.Root. It holds only this description until that issue is taken up.
package filexfer
