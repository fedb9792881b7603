+ PLATFORM:linux rigfit 0.1.0 .
+ PLATFORM:win64 rigfit 0.1.0 .
+ PLATFORM:mac rigfit 0.1.0 .
